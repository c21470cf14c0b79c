#include "gridnode/drivers/textfile.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <utime.h>

#include <sstream>
#include <string>

#include "../../drivers/src/textfile/prom_text.hpp"
#include "../../drivers/src/textfile/textfile_options.hpp"
#include "alloc_counter.hpp"
#include "golden.hpp"
#include "temp_dir.hpp"

namespace gridnode::drivers {
namespace {

using gridnode::testing::expect_golden;
using gridnode::testing::FakeTree;
using gridnode::testing::fixture_path;
using gridnode::testing::has_line;
using gridnode::testing::sweep_ok;
using gridnode::testing::sweep_text;
using textfile::Decimal;
using textfile::format_go_float;
using textfile::parse_decimal;
using textfile::parse_prom_text;

std::unique_ptr<Driver> driver_for(const std::string& dir) {
  TextfileOptions o;
  o.directory = dir;
  return make_textfile_driver(std::move(o));
}

// The sweep's text with the directory's path written as DIR and each file's mtime as N (the
// checkout's time), for a golden file that holds wherever the tree is.
std::string stable_text(const Sweep& sweep, const std::string& dir) {
  std::istringstream in(sweep_text(sweep));
  std::string out;
  for (std::string line; std::getline(in, line);) {
    for (auto at = line.find(dir); at != std::string::npos; at = line.find(dir)) {
      line.replace(at, dir.size(), "DIR");
    }
    if (line.starts_with("node_textfile_mtime_seconds")) {
      line = line.substr(0, line.rfind(' ')) + " N";
    }
    out += line + "\n";
  }
  return out;
}

std::int64_t mtime_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mtim.tv_sec;
}

TEST(TextfileParse, DecimalsAreExact) {
  EXPECT_EQ(*parse_decimal("1.5e-3"), (Decimal{15, false, -4}));
  EXPECT_EQ(*parse_decimal("-0.25"), (Decimal{25, true, -2}));
  EXPECT_EQ(*parse_decimal("1701475123.25"), (Decimal{170147512325, false, -2}));
  EXPECT_EQ(*parse_decimal("100"), (Decimal{1, false, 2}));
  EXPECT_EQ(*parse_decimal("+.5"), (Decimal{5, false, -1}));
  EXPECT_EQ(*parse_decimal("0"), Decimal{});
  EXPECT_EQ(*parse_decimal("-0.000"), Decimal{});
  // 25 significant digits: rounded to 19.
  EXPECT_EQ(*parse_decimal("1234567890123456789012345"), (Decimal{1234567890123456789, false, 6}));
  EXPECT_EQ(parse_decimal("NaN")->kind, Decimal::Kind::nan);
  EXPECT_EQ(parse_decimal("+Inf")->kind, Decimal::Kind::infinite);
  EXPECT_TRUE(parse_decimal("-infinity")->negative);
  for (auto bad : {"", "1.2.3", "0x10", "1_000", "1e", "e5", "--1", "+nan", "1e400", "one", "."}) {
    EXPECT_FALSE(parse_decimal(bad).has_value()) << bad;
  }
}

TEST(TextfileParse, FormatsBoundsAsGo) {
  auto f = [](std::string_view s) { return format_go_float(*parse_decimal(s)); };
  EXPECT_EQ(f("1.0"), "1");
  EXPECT_EQ(f("0.5"), "0.5");
  EXPECT_EQ(f("100000"), "100000");
  EXPECT_EQ(f("1000000"), "1e+06");
  EXPECT_EQ(f("1234567"), "1.234567e+06");
  EXPECT_EQ(f("0.0001"), "0.0001");
  EXPECT_EQ(f("0.00001"), "1e-05");
  EXPECT_EQ(f("+Inf"), "+Inf");
  EXPECT_EQ(f("-2.50"), "-2.5");
}

TEST(TextfileParse, RefusesWhatExpfmtRefuses) {
  struct Case {
    const char* text;
    const char* why;
  };
  for (auto c :
       {Case{"x 1", "unexpected end of input"},
        Case{"x{a=\"1\" 1\n", "unexpected end of label value"}, Case{"x{a=1} 1\n", "expected '\"'"},
        Case{"x{a=\"1\",a=\"2\"} 1\n", "duplicate label names"},
        Case{"x{__name__=\"y\"} 1\n", "reserved"}, Case{"x 1 \n", "expected integer as timestamp"},
        Case{"x 1 12 z\n", "spurious string"}, Case{"x 1 12\n", "timestamp"},
        Case{"# TYPE x gauge\n# TYPE x counter\n", "second TYPE"},
        Case{"x 1\n# TYPE x gauge\n", "TYPE reported after samples"},
        Case{"# HELP x a\n# HELP x b\n", "second HELP"},
        Case{"# TYPE x nonsense\n", "unknown metric type"},
        Case{"# TYPE x summary\nx{quantile=\"high\"} 1\n",
             "expected float as value for 'quantile'"},
        Case{"x{a=\"1\"} 1\nx{a=\"1\"} 2\n", "given twice"}, Case{"9x 1\n", "invalid metric name"},
        Case{"x{a=\"\\t\"} 1\n", "invalid escape"}}) {
    auto r = parse_prom_text(c.text);
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_NE(r.error().context.find(c.why), std::string::npos)
        << c.text << " -> " << r.error().context;
  }
}

TEST(TextfileParse, FlattensAsNodeExporterWritesOut) {
  auto r = parse_prom_text(
      "# TYPE h histogram\nh_bucket{le=\"1.0\",x=\"a\"} 2\nh_count{x=\"a\"} 5\n"
      "# TYPE s summary\ns{quantile=\"0.5\"} 1\n"
      "u{a=\"1\"} 1\nu{b=\"2\"} 2\n# HELP u some\\\\help\\n\n");
  ASSERT_TRUE(r.has_value()) << r.error().context;
  ASSERT_EQ(r->size(), 7u);
  const auto& bucket = (*r)[0];
  EXPECT_EQ(bucket.name, "h_bucket");
  ASSERT_EQ(bucket.samples.size(), 2u);  // le="1", and the +Inf bucket client_golang adds
  EXPECT_EQ(bucket.samples[0].labels, (Labels{{"le", "1"}, {"x", "a"}}));
  EXPECT_EQ(bucket.samples[1].labels, (Labels{{"le", "+Inf"}, {"x", "a"}}));
  EXPECT_EQ(bucket.samples[1].value, (Decimal{5, false, 0}));
  EXPECT_EQ((*r)[1].name, "h_sum");  // 0 where the file has none, as MustNewConstHistogram
  EXPECT_EQ((*r)[1].samples[0].value, Decimal{});
  EXPECT_EQ((*r)[2].name, "h_count");
  EXPECT_EQ((*r)[3].name, "s");
  EXPECT_EQ((*r)[4].name, "s_sum");
  EXPECT_EQ((*r)[5].name, "s_count");
  const auto& u = (*r)[6];
  EXPECT_EQ(u.samples[0].labels, (Labels{{"a", "1"}, {"b", ""}}));
  EXPECT_EQ(u.samples[1].labels, (Labels{{"a", ""}, {"b", "2"}}));
  EXPECT_EQ(u.help, "some\\help\n");
}

TEST(TextfileDriver, GoodDirectoryMatchesGolden) {
  std::string dir = fixture_path("textfile/good/dir");
  auto d = driver_for(dir);
  Sweep s = sweep_ok(*d);
  expect_golden(stable_text(s, dir), fixture_path("textfile/good/expected.prom"));
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, "node_textfile_mtime_seconds{file=\"" + dir + "/a.prom\"} " +
                                 std::to_string(mtime_of(dir + "/a.prom"))));
  EXPECT_TRUE(has_line(text, "node_textfile_scrape_error 0"));
  EXPECT_EQ(s.errors, 0u);
  // HELP: the file's, and node_exporter's "Metric read from" where it has none; the family two
  // files share has the first HELP given.
  const auto& families = s.catalog->families;
  auto help = [&](std::string_view name) {
    for (const auto& f : families) {
      if (f.name == name) {
        return f.help;
      }
    }
    return std::string("(absent)");
  };
  EXPECT_EQ(help("backup_last_success_timestamp_seconds"), "When the last backup succeeded.");
  EXPECT_EQ(help("node_custom_small"), "Metric read from " + dir + "/b.prom");
  EXPECT_EQ(help("job_duration_seconds_bucket"), "How long the job took,\nin seconds.");
}

TEST(TextfileDriver, AFamilyTwoFilesGiveIsMerged) {
  // node_exporter 1.5 drops the samples of the second file when the HELP texts differ (a
  // gather error, scrape_error still 0); we merge them under the first HELP given.
  FakeTree tree;
  tree.write("d/a.prom", "# HELP shared From a.\nshared{f=\"a\"} 1\n");
  tree.write("d/b.prom", "shared{f=\"b\"} 2\n");
  auto d = driver_for(tree.root() + "/d");
  Sweep s = sweep_ok(*d);
  std::string text = sweep_text(s);
  EXPECT_TRUE(has_line(text, "shared{f=\"a\"} 1"));
  EXPECT_TRUE(has_line(text, "shared{f=\"b\"} 2"));
  EXPECT_EQ(s.catalog->families.front().help, "From a.");
}

TEST(TextfileDriver, BadFilesAreReportedOthersKept) {
  for (std::string_view c : {"bad", "refused"}) {
    std::string dir = fixture_path("textfile/" + std::string(c) + "/dir");
    auto d = driver_for(dir);
    Sweep s = sweep_ok(*d);
    expect_golden(stable_text(s, dir),
                  fixture_path("textfile/" + std::string(c) + "/expected.prom"));
    std::string text = sweep_text(s);
    EXPECT_TRUE(has_line(text, "node_textfile_scrape_error 1")) << c;
  }
  std::string refused = sweep_text(sweep_ok(*driver_for(fixture_path("textfile/refused/dir"))));
  // NaN and +Inf are dropped sample by sample; the file's other sample stays, its mtime too.
  EXPECT_TRUE(has_line(refused, "special{v=\"one\"} 1"));
  EXPECT_EQ(refused.find("v=\"nan\""), std::string::npos);
  EXPECT_NE(refused.find("special.prom"), std::string::npos);
  EXPECT_EQ(refused.find("gridnode_driver_up"), std::string::npos);
  EXPECT_EQ(refused.find("job=\"other\""), std::string::npos);
  EXPECT_EQ(refused.find("twice"), std::string::npos);
}

TEST(TextfileOptions, SectionKeys) {
  OptionSection ok{"textfile",
                   {{"directory", "agent.toml:2", std::string("/var/lib/x")},
                    {"max_file_bytes", "agent.toml:3", std::int64_t{4096}}}};
  auto o = textfile::options(DriverContext{}, ok);
  ASSERT_TRUE(o.has_value()) << o.error().context;
  EXPECT_EQ(o->directory, "/var/lib/x");
  EXPECT_EQ(o->max_file_bytes, 4096u);
  OptionSection relative{"textfile", {{"directory", "agent.toml:2", std::string("x")}}};
  auto r = textfile::check(relative);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().context.find("textfile.directory"), std::string::npos) << r.error().context;
  OptionSection tiny{"textfile", {{"max_file_bytes", "agent.toml:3", std::int64_t{10}}}};
  EXPECT_FALSE(textfile::check(tiny).has_value());
}

TEST(TextfileDriver, NotConfiguredIsAbsent) {
  auto d = make_textfile_driver({});
  Sweep s;
  auto r = d->sweep(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, std::errc::no_such_file_or_directory);
}

TEST(TextfileDriver, MissingDirectoryIsAScrapeError) {
  FakeTree tree;
  auto d = driver_for(tree.root() + "/nowhere");
  std::string text = sweep_text(sweep_ok(*d));
  EXPECT_TRUE(has_line(text, "node_textfile_scrape_error 1"));
  tree.write("nowhere/x.prom", "x 1\n");
  text = sweep_text(sweep_ok(*d));
  EXPECT_TRUE(has_line(text, "x 1"));
  EXPECT_TRUE(has_line(text, "node_textfile_scrape_error 0"));
}

TEST(TextfileDriver, HugeFileIsRefused) {
  FakeTree tree;
  std::string big;
  for (int i = 0; big.size() <= 4096; ++i) {
    big += "big{i=\"" + std::to_string(i) + "\"} 1\n";
  }
  tree.write("d/big.prom", big);
  tree.write("d/small.prom", "small 2\n");
  TextfileOptions o;
  o.directory = tree.root() + "/d/";  // a trailing slash is cleaned, as filepath.Join does
  o.max_file_bytes = 4096;
  auto d = make_textfile_driver(o);
  std::string text = sweep_text(sweep_ok(*d));
  EXPECT_TRUE(has_line(text, "small 2"));
  EXPECT_EQ(text.find("big{"), std::string::npos);
  EXPECT_TRUE(has_line(text, "node_textfile_scrape_error 1"));
  EXPECT_NE(text.find("{file=\"" + tree.root() + "/d/small.prom\"}"), std::string::npos);
}

TEST(TextfileDriver, RereadsWhenAFileOrTheDirectoryChanges) {
  FakeTree tree;
  tree.write("d/a.prom", "a 1\n");
  auto d = driver_for(tree.root() + "/d");
  Sweep s1 = sweep_ok(*d);
  Sweep s2 = sweep_ok(*d);
  EXPECT_EQ(s1.catalog, s2.catalog);
  // Rewritten in place with the same size and mtime would be missed; a new size is not.
  tree.write("d/a.prom", "a 22\n");
  EXPECT_TRUE(has_line(sweep_text(sweep_ok(*d)), "a 22"));
  // A file renamed into place (node_exporter's advice) changes the directory.
  tree.write("d/b.tmp", "b 3\n");
  ASSERT_EQ(::rename((tree.root() + "/d/b.tmp").c_str(), (tree.root() + "/d/b.prom").c_str()), 0);
  std::string text = sweep_text(sweep_ok(*d));
  EXPECT_TRUE(has_line(text, "b 3"));
  tree.remove("d/a.prom");
  text = sweep_text(sweep_ok(*d));
  EXPECT_EQ(text.find("a 22"), std::string::npos);
  EXPECT_TRUE(has_line(text, "b 3"));
}

TEST(TextfileDriver, ValuesKeepTheirDigits) {
  FakeTree tree;
  tree.write(
      "d/v.prom",
      "v{k=\"a\"} 1.5e-3\nv{k=\"b\"} 12\nv{k=\"c\"} -7.25\nw 1e+20\nz 9223372036854775807\n");
  auto d = driver_for(tree.root() + "/d");
  std::string text = sweep_text(sweep_ok(*d));
  EXPECT_TRUE(has_line(text, "v{k=\"a\"} 0.0015")) << text;
  EXPECT_TRUE(has_line(text, "v{k=\"b\"} 12"));
  EXPECT_TRUE(has_line(text, "v{k=\"c\"} -7.25"));
  EXPECT_TRUE(has_line(text, "w 100000000000000000000"));
  // 19 significant digits are kept exactly (more are rounded: a float64 holds 17).
  EXPECT_TRUE(has_line(text, "z 9223372036854775807"));
}

TEST(TextfileDriver, SteadyStateSweepDoesNotAllocate) {
  auto d = driver_for(fixture_path("textfile/good/dir"));
  Sweep s;
  for (int i = 0; i < 3; ++i) {
    s.reset();
    ASSERT_TRUE(d->sweep(s).has_value());
  }
  std::size_t readings = s.readings.size();
  testing::AllocationCounter allocations;
  allocations.start();
  s.reset();
  auto r = d->sweep(s);
  std::size_t allocated = allocations.stop();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(s.readings.size(), readings);
  EXPECT_EQ(allocated, 0u);
}

}  // namespace
}  // namespace gridnode::drivers
