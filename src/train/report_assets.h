// The files a report inlines, embedded into the binary at build time by
// cmake/embed_report_assets.cmake: uPlot's script and style from web/node_modules/uplot (installed
// by scripts/install_deps.sh from web/package-lock.json) and the page's own script and style
// (src/train/report_page.js, report_page.css). A build made before the npm install has no uPlot:
// uplot_js is empty and `lmforge report` says how to get it.
#pragma once

#include <string_view>

namespace lmforge::train::report_assets {

extern const std::string_view uplot_js;       // dist/uPlot.iife.min.js, "" when not found
extern const std::string_view uplot_css;      // dist/uPlot.min.css
extern const std::string_view uplot_version;  // from its package.json
extern const std::string_view uplot_dir;      // where the build looked for it
extern const std::string_view page_js;
extern const std::string_view page_css;

}  // namespace lmforge::train::report_assets
