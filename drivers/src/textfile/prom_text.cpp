#include "textfile/prom_text.hpp"

#include <algorithm>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "gridnode/platform/files.hpp"

namespace gridnode::drivers::textfile {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_label_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_label_cont(char c) { return is_label_start(c) || (c >= '0' && c <= '9'); }
bool is_name_start(char c) { return is_label_start(c) || c == ':'; }
bool is_name_cont(char c) { return is_label_cont(c) || c == ':'; }

bool ends_with(std::string_view s, std::string_view suffix, std::size_t more) {
  return s.size() > more && s.substr(s.size() - suffix.size()) == suffix;
}
bool is_count(std::string_view n) { return ends_with(n, "_count", 6); }
bool is_sum(std::string_view n) { return ends_with(n, "_sum", 4); }
bool is_bucket(std::string_view n) { return ends_with(n, "_bucket", 7); }

bool equal_fold(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

platform::Error bad(std::string why) {
  return platform::Error{std::make_error_code(std::errc::invalid_argument), std::move(why)};
}

// A summary's or histogram's series of one label set, as expfmt gathers it.
struct Aggregate {
  Labels labels;
  Decimal sum;
  Decimal count;
  std::vector<std::pair<std::string, Decimal>> points;  // quantile or le (formatted), value
};

struct RawFamily {
  std::string name;
  std::string help;
  bool has_help = false;
  bool has_type = false;
  TextType type = TextType::untyped;
  std::vector<TextSample> plain;      // counter, gauge, untyped
  std::vector<Aggregate> aggregates;  // summary, histogram
  std::unordered_map<std::string, std::size_t> by_signature;
};

std::string signature(const Labels& labels) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  std::string sig;
  for (const auto& [k, v] : sorted) {
    sig.append(k).push_back('\0');
    sig.append(v).push_back('\0');
  }
  return sig;
}

// uint64(value), as expfmt stores a _count or a bucket: towards zero; what Go leaves undefined
// (negative, NaN, Inf) is 0 here.
Decimal truncated(Decimal d) {
  if (d.kind != Decimal::Kind::finite || d.negative) {
    return {};
  }
  while (d.exp10 < 0 && d.magnitude != 0) {
    d.magnitude /= 10;
    ++d.exp10;
  }
  if (d.exp10 < 0) {
    d.exp10 = 0;
  }
  return d;
}

class Parser {
 public:
  platform::Result<std::vector<TextFamily>> run(std::string_view text) {
    std::size_t line_no = 0;
    while (!text.empty()) {
      ++line_no;
      auto nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      bool terminated = nl != std::string_view::npos;
      text.remove_prefix(terminated ? nl + 1 : text.size());
      std::size_t i = 0;
      while (i < line.size() && is_blank(line[i])) {
        ++i;
      }
      if (i == line.size()) {
        continue;
      }
      if (!terminated) {
        // expfmt reads to the newline; the end of input before it is an error.
        return tl::unexpected(
            bad("line " + std::to_string(line_no) + ": unexpected end of input stream"));
      }
      auto r = line[i] == '#' ? comment(line.substr(i + 1)) : sample(line.substr(i));
      if (!r) {
        return tl::unexpected(bad("line " + std::to_string(line_no) + ": " + r.error().context));
      }
    }
    return flatten();
  }

 private:
  // expfmt's setOrCreateCurrentMF: a name is its own family, or the _sum/_count of a summary,
  // or the _sum/_count/_bucket of a histogram declared before it.
  RawFamily& family_for(std::string_view name, std::string_view* part) {
    *part = {};
    if (auto it = index_.find(std::string(name)); it != index_.end()) {
      return families_[it->second];
    }
    auto base = [&](std::string_view suffix) {
      return name.substr(0, name.size() - suffix.size());
    };
    std::string_view summary = is_count(name) ? base("_count") : is_sum(name) ? base("_sum") : name;
    if (auto it = index_.find(std::string(summary));
        it != index_.end() && families_[it->second].type == TextType::summary) {
      *part = name.substr(summary.size());
      return families_[it->second];
    }
    std::string_view histogram = is_bucket(name) ? base("_bucket") : summary;
    if (auto it = index_.find(std::string(histogram));
        it != index_.end() && families_[it->second].type == TextType::histogram) {
      *part = name.substr(histogram.size());
      return families_[it->second];
    }
    index_.emplace(std::string(name), families_.size());
    RawFamily& f = families_.emplace_back();
    f.name = std::string(name);
    return f;
  }

  static std::size_t name_end(std::string_view s, std::size_t i) {
    if (i < s.size() && is_name_start(s[i])) {
      ++i;
      while (i < s.size() && is_name_cont(s[i])) {
        ++i;
      }
    }
    return i;
  }

  platform::Result<void> comment(std::string_view rest) {
    std::size_t i = 0;
    while (i < rest.size() && is_blank(rest[i])) {
      ++i;
    }
    std::size_t start = i;
    while (i < rest.size() && !is_blank(rest[i])) {
      ++i;
    }
    std::string_view keyword = rest.substr(start, i - start);
    if (i == rest.size() || (keyword != "HELP" && keyword != "TYPE")) {
      return {};  // a plain comment
    }
    while (i < rest.size() && is_blank(rest[i])) {
      ++i;
    }
    std::size_t name_start = i;
    i = name_end(rest, i);
    std::string_view name = rest.substr(name_start, i - name_start);
    if (i == rest.size()) {
      return {};
    }
    if (!is_blank(rest[i])) {
      return platform::fail(std::errc::invalid_argument, "invalid metric name in comment");
    }
    std::string_view part;
    RawFamily& f = family_for(name, &part);
    while (i < rest.size() && is_blank(rest[i])) {
      ++i;
    }
    if (i == rest.size()) {
      return {};
    }
    std::string_view value = rest.substr(i);
    if (keyword == "HELP") {
      if (f.has_help) {
        return platform::fail(std::errc::invalid_argument,
                              "second HELP line for metric name \"" + f.name + "\"");
      }
      std::string help;
      for (std::size_t k = 0; k < value.size(); ++k) {
        if (value[k] != '\\') {
          help.push_back(value[k]);
        } else if (k + 1 < value.size() && value[k + 1] == '\\') {
          help.push_back('\\');
          ++k;
        } else if (k + 1 < value.size() && value[k + 1] == 'n') {
          help.push_back('\n');
          ++k;
        } else {
          return platform::fail(std::errc::invalid_argument, "invalid escape sequence in HELP");
        }
      }
      f.help = std::move(help);
      f.has_help = true;
      return {};
    }
    if (f.has_type) {
      return platform::fail(
          std::errc::invalid_argument,
          "second TYPE line for metric name \"" + f.name + "\", or TYPE reported after samples");
    }
    constexpr std::pair<std::string_view, TextType> kTypes[] = {
        {"counter", TextType::counter},     {"gauge", TextType::gauge},
        {"untyped", TextType::untyped},     {"summary", TextType::summary},
        {"histogram", TextType::histogram},
    };
    for (const auto& [word, type] : kTypes) {
      if (equal_fold(value, word)) {
        f.type = type;
        f.has_type = true;
        return {};
      }
    }
    return platform::fail(std::errc::invalid_argument,
                          "unknown metric type \"" + std::string(value) + "\"");
  }

  platform::Result<void> sample(std::string_view line) {
    std::size_t i = name_end(line, 0);
    if (i == 0) {
      return platform::fail(std::errc::invalid_argument, "invalid metric name");
    }
    std::string_view part;
    RawFamily& f = family_for(line.substr(0, i), &part);
    f.has_type = true;  // a TYPE after samples is refused
    bool aggregate = f.type == TextType::summary || f.type == TextType::histogram;
    std::string_view point_label = f.type == TextType::summary ? "quantile" : "le";
    Labels labels;
    std::optional<Decimal> point;
    while (i < line.size() && is_blank(line[i])) {
      ++i;
    }
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        while (i < line.size() && is_blank(line[i])) {
          ++i;
        }
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        std::size_t start = i;
        if (i < line.size() && is_label_start(line[i])) {
          ++i;
          while (i < line.size() && is_label_cont(line[i])) {
            ++i;
          }
        }
        std::string key(line.substr(start, i - start));
        if (key.empty()) {
          return platform::fail(std::errc::invalid_argument,
                                "invalid label name for metric \"" + f.name + "\"");
        }
        if (key == "__name__") {
          return platform::fail(std::errc::invalid_argument, "label name \"__name__\" is reserved");
        }
        while (i < line.size() && is_blank(line[i])) {
          ++i;
        }
        if (i == line.size() || line[i] != '=') {
          return platform::fail(std::errc::invalid_argument, "expected '=' after label name");
        }
        ++i;
        while (i < line.size() && is_blank(line[i])) {
          ++i;
        }
        if (i == line.size() || line[i] != '"') {
          return platform::fail(std::errc::invalid_argument,
                                "expected '\"' at start of label value");
        }
        ++i;
        std::string value;
        bool closed = false;
        while (i < line.size()) {
          char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (i == line.size()) {
              break;
            }
            char e = line[i++];
            if (e == '"' || e == '\\') {
              value.push_back(e);
            } else if (e == 'n') {
              value.push_back('\n');
            } else {
              return platform::fail(std::errc::invalid_argument,
                                    "invalid escape sequence in label value");
            }
          } else {
            value.push_back(c);
          }
        }
        if (!closed) {
          return platform::fail(std::errc::invalid_argument,
                                "label value contains unescaped new-line");
        }
        bool duplicate = (aggregate && key == point_label && point) ||
                         std::any_of(labels.begin(), labels.end(),
                                     [&](const auto& l) { return l.first == key; });
        if (duplicate) {
          return platform::fail(std::errc::invalid_argument,
                                "duplicate label names for metric \"" + f.name + "\"");
        }
        if (aggregate && key == point_label) {
          auto d = parse_decimal(value);
          if (!d) {
            return platform::fail(
                std::errc::invalid_argument,
                "expected float as value for '" + key + "' label, got \"" + value + "\"");
          }
          point = *d;
        } else {
          labels.emplace_back(std::move(key), std::move(value));
        }
        while (i < line.size() && is_blank(line[i])) {
          ++i;
        }
        if (i < line.size() && line[i] == ',') {
          ++i;
          continue;
        }
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        return platform::fail(std::errc::invalid_argument, "unexpected end of label value");
      }
      while (i < line.size() && is_blank(line[i])) {
        ++i;
      }
    }
    std::size_t start = i;
    while (i < line.size() && !is_blank(line[i])) {
      ++i;
    }
    std::string_view token = line.substr(start, i - start);
    auto value = parse_decimal(token);
    if (!value) {
      return platform::fail(std::errc::invalid_argument,
                            "expected float as value, got \"" + std::string(token) + "\"");
    }
    if (i < line.size()) {
      // expfmt reads a timestamp after any blank, so trailing blanks are an empty timestamp.
      while (i < line.size() && is_blank(line[i])) {
        ++i;
      }
      start = i;
      while (i < line.size() && !is_blank(line[i])) {
        ++i;
      }
      if (!platform::parse_int64(line.substr(start, i - start))) {
        return platform::fail(std::errc::invalid_argument,
                              "expected integer as timestamp, got \"" +
                                  std::string(line.substr(start, i - start)) + "\"");
      }
      while (i < line.size() && is_blank(line[i])) {
        ++i;
      }
      if (i < line.size()) {
        return platform::fail(std::errc::invalid_argument, "spurious string after timestamp");
      }
      // node_exporter refuses the whole file (textfile.go's hasTimestamps).
      return platform::fail(std::errc::invalid_argument,
                            "unsupported client-side timestamp on \"" + f.name + "\"");
    }
    if (!aggregate) {
      f.plain.push_back(TextSample{std::move(labels), *value});
      return {};
    }
    auto sig = signature(labels);
    auto [it, fresh] = f.by_signature.emplace(std::move(sig), f.aggregates.size());
    if (fresh) {
      f.aggregates.push_back(Aggregate{std::move(labels), {}, {}, {}});
    }
    Aggregate& a = f.aggregates[it->second];
    if (part == "_count") {
      a.count = truncated(*value);
    } else if (part == "_sum") {
      a.sum = *value;
    } else if (point) {
      // A repeated quantile or bound replaces the earlier one (expfmt's map).
      auto key = format_go_float(*point);
      Decimal v = f.type == TextType::histogram ? truncated(*value) : *value;
      auto same = std::find_if(a.points.begin(), a.points.end(),
                               [&](const auto& p) { return p.first == key; });
      if (same != a.points.end()) {
        same->second = v;
      } else {
        a.points.emplace_back(std::move(key), v);
      }
    }
    // A summary sample without quantile or a histogram one without le: ignored, as in expfmt.
    return {};
  }

  // node_exporter's convertMetricFamily: every series carries every label name of its family.
  platform::Result<std::vector<TextFamily>> flatten() {
    std::vector<TextFamily> out;
    for (auto& f : families_) {
      if (f.plain.empty() && f.aggregates.empty()) {
        continue;  // HELP or TYPE without samples
      }
      std::set<std::string> names;
      for (const auto& s : f.plain) {
        for (const auto& l : s.labels) {
          names.insert(l.first);
        }
      }
      for (const auto& a : f.aggregates) {
        for (const auto& l : a.labels) {
          names.insert(l.first);
        }
      }
      auto complete = [&](Labels labels) {
        for (const auto& n : names) {
          if (std::none_of(labels.begin(), labels.end(),
                           [&](const auto& l) { return l.first == n; })) {
            labels.emplace_back(n, "");
          }
        }
        std::sort(labels.begin(), labels.end());
        return labels;
      };
      auto make = [&](std::string name, MetricType type) {
        TextFamily t;
        t.name = std::move(name);
        t.help = f.help;
        t.has_help = f.has_help;
        t.origin = f.type;
        t.type = type;
        return t;
      };
      if (f.type != TextType::summary && f.type != TextType::histogram) {
        TextFamily t =
            make(f.name, f.type == TextType::counter ? MetricType::counter : MetricType::gauge);
        for (auto& s : f.plain) {
          t.samples.push_back(TextSample{complete(std::move(s.labels)), s.value});
        }
        out.push_back(std::move(t));
        continue;
      }
      bool histogram = f.type == TextType::histogram;
      TextFamily points = make(histogram ? f.name + "_bucket" : f.name,
                               histogram ? MetricType::counter : MetricType::gauge);
      TextFamily sum = make(f.name + "_sum", MetricType::counter);
      TextFamily count = make(f.name + "_count", MetricType::counter);
      std::string_view point_label = histogram ? "le" : "quantile";
      for (auto& a : f.aggregates) {
        Labels labels = complete(std::move(a.labels));
        bool has_inf = false;
        for (auto& [key, v] : a.points) {
          has_inf = has_inf || key == "+Inf";
          Labels l = labels;
          l.emplace_back(std::string(point_label), key);
          std::sort(l.begin(), l.end());
          points.samples.push_back(TextSample{std::move(l), v});
        }
        if (histogram && !has_inf) {
          // client_golang writes the +Inf bucket a histogram must have: its count.
          Labels l = labels;
          l.emplace_back("le", "+Inf");
          std::sort(l.begin(), l.end());
          points.samples.push_back(TextSample{std::move(l), a.count});
        }
        sum.samples.push_back(TextSample{labels, a.sum});
        count.samples.push_back(TextSample{std::move(labels), a.count});
      }
      if (!points.samples.empty()) {
        out.push_back(std::move(points));
      }
      out.push_back(std::move(sum));
      out.push_back(std::move(count));
    }
    for (const auto& t : out) {
      std::set<std::string> seen;
      for (const auto& s : t.samples) {
        if (!seen.insert(signature(s.labels)).second) {
          return platform::fail(std::errc::invalid_argument,
                                "series of \"" + t.name + "\" given twice");
        }
      }
    }
    return out;
  }

  std::vector<RawFamily> families_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace

platform::Result<Decimal> parse_decimal(std::string_view text) {
  auto not_number = [&] {
    return platform::fail(std::errc::invalid_argument,
                          "not a number: \"" + std::string(text) + "\"");
  };
  if (text.empty() || text.find_first_of("pP_") != std::string_view::npos) {
    return not_number();
  }
  Decimal d;
  std::string_view s = text;
  bool sign = false;
  if (s.front() == '+' || s.front() == '-') {
    d.negative = s.front() == '-';
    sign = true;
    s.remove_prefix(1);
  }
  if (equal_fold(s, "inf") || equal_fold(s, "infinity")) {
    d.kind = Decimal::Kind::infinite;
    return d;
  }
  if (!sign && equal_fold(s, "nan")) {
    d.kind = Decimal::Kind::nan;
    return d;
  }
  std::size_t i = 0;
  int digits = 0;    // significant digits kept
  bool any = false;  // any digit at all
  bool round_up = false;
  bool dropped = false;
  bool point = false;
  std::int64_t exp = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.') {
      if (point) {
        return not_number();
      }
      point = true;
      continue;
    }
    if (c < '0' || c > '9') {
      break;
    }
    any = true;
    if (c == '0' && digits == 0) {
      if (point) {
        --exp;
      }
      continue;
    }
    if (digits < 19) {
      d.magnitude = d.magnitude * 10 + static_cast<std::uint64_t>(c - '0');
      ++digits;
      if (point) {
        --exp;
      }
    } else {
      if (!dropped) {
        round_up = c >= '5';
        dropped = true;
      }
      if (!point) {
        ++exp;
      }
    }
  }
  if (!any) {
    return not_number();
  }
  if (i < s.size()) {
    if (s[i] != 'e' && s[i] != 'E') {
      return not_number();
    }
    ++i;
    bool neg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      neg = s[i] == '-';
      ++i;
    }
    if (i == s.size()) {
      return not_number();
    }
    std::int64_t e = 0;
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') {
        return not_number();
      }
      e = std::min<std::int64_t>(e * 10 + (s[i] - '0'), 100000);
    }
    exp += neg ? -e : e;
  }
  if (round_up) {
    if (d.magnitude == 9999999999999999999ULL) {
      d.magnitude = 1000000000000000000ULL;
      ++exp;
    } else {
      ++d.magnitude;
    }
  }
  if (d.magnitude == 0) {
    return Decimal{};
  }
  while (d.magnitude % 10 == 0) {
    d.magnitude /= 10;
    ++exp;
  }
  // float64 overflows a little above 1.8e308 (ParseFloat's ErrRange); below 1e-324 it is 0.
  std::int64_t digits_after = std::to_string(d.magnitude).size();
  if (exp + digits_after - 1 > 308) {
    return not_number();
  }
  if (exp + digits_after - 1 < -324) {
    return Decimal{};
  }
  d.exp10 = static_cast<std::int32_t>(exp);
  return d;
}

std::string format_go_float(const Decimal& d) {
  if (d.kind == Decimal::Kind::nan) {
    return "NaN";
  }
  if (d.kind == Decimal::Kind::infinite) {
    return d.negative ? "-Inf" : "+Inf";
  }
  if (d.magnitude == 0) {
    return "0";
  }
  std::uint64_t m = d.magnitude;
  std::int64_t e10 = d.exp10;
  while (m % 10 == 0) {
    m /= 10;
    ++e10;
  }
  std::string digits = std::to_string(m);
  auto nd = static_cast<std::int64_t>(digits.size());
  std::int64_t dp = nd + e10;  // value = 0.digits × 10^dp
  std::int64_t exp = dp - 1;
  std::string out = d.negative ? "-" : "";
  // strconv.FormatFloat(v, 'g', -1, 64): with the shortest precision, %e is used when the
  // exponent is below -4 or at least 6 (strconv/ftoa.go; fmt's %v would say 21).
  if (exp < -4 || exp >= 6) {
    out += digits.substr(0, 1);
    if (nd > 1) {
      out += '.';
      out += digits.substr(1);
    }
    out += 'e';
    out += exp < 0 ? '-' : '+';
    std::string ed = std::to_string(exp < 0 ? -exp : exp);
    if (ed.size() < 2) {
      out += '0';
    }
    out += ed;
    return out;
  }
  if (dp <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-dp), '0');
    out += digits;
  } else if (dp >= nd) {
    out += digits;
    out.append(static_cast<std::size_t>(dp - nd), '0');
  } else {
    out += digits.substr(0, static_cast<std::size_t>(dp));
    out += '.';
    out += digits.substr(static_cast<std::size_t>(dp));
  }
  return out;
}

platform::Result<std::vector<TextFamily>> parse_prom_text(std::string_view text) {
  return Parser().run(text);
}

}  // namespace gridnode::drivers::textfile
