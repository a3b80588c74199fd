# The files `lmforge report` inlines into every page (src/train/report_assets.h): uPlot from
# web/node_modules (scripts/install_deps.sh runs npm ci there) and the page's own script and style.
# The embedding runs at every build, so installing uPlot after configuring needs only a rebuild.
set(LMFORGE_REPORT_ASSETS_CPP ${PROJECT_BINARY_DIR}/generated/report_assets.cpp)
add_custom_target(lmforge_report_assets
  COMMAND ${CMAKE_COMMAND} -DUPLOT_DIR=${PROJECT_SOURCE_DIR}/web/node_modules/uplot
          -DPAGE_DIR=${PROJECT_SOURCE_DIR}/src/train -DOUT=${LMFORGE_REPORT_ASSETS_CPP}
          -P ${PROJECT_SOURCE_DIR}/cmake/embed_report_assets.cmake
  BYPRODUCTS ${LMFORGE_REPORT_ASSETS_CPP}
  COMMENT "Embedding the report's uPlot and page files"
  VERBATIM)
target_sources(lmforge_lib PRIVATE ${LMFORGE_REPORT_ASSETS_CPP})
add_dependencies(lmforge_lib lmforge_report_assets)
