// The enum-name table: both directions, and the error for an unknown name listing the table.
#include <gtest/gtest.h>

#include "core/enum_names.h"

namespace lmforge {
namespace {

enum class Color { Red, Green, Blue };
constexpr EnumNames<Color, 3> kColors{{{Color::Red, "red"}, {Color::Green, "green"}, {Color::Blue, "blue"}}};

TEST(EnumNames, NamesAndParsesEveryEntry) {
  EXPECT_EQ(enum_name(kColors, Color::Green), "green");
  EXPECT_EQ(enum_name(kColors, static_cast<Color>(7)), "?");
  for (const auto& [value, name] : kColors) EXPECT_EQ(parse_enum_name(kColors, name, "paint.color"), value);
}

TEST(EnumNames, UnknownNameIsAnErrorNamingTheKeyAndTheChoices) {
  try {
    parse_enum_name(kColors, "Red", "paint.color");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "paint.color: unknown value \"Red\" (expected red | green | blue)");
  }
}

}  // namespace
}  // namespace lmforge
