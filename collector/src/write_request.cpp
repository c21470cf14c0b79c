#include "gridnode/collector/write_request.hpp"

#include <algorithm>
#include <charconv>

#include <nlohmann/json.hpp>
#include <snappy-c.h>

#include "remote_write.pb-c.h"

namespace gridnode::collector {
namespace {

using StringPair = std::pair<std::string, std::string>;

// A reused list of pairs: assign() overwrites the strings in place, so their capacity is kept
// between lines.
struct PairList {
  std::vector<StringPair> items;
  std::size_t size = 0;
  StringPair& next() {
    if (size == items.size()) {
      items.emplace_back();
    }
    return items[size++];
  }
  void clear() { size = 0; }
};

struct Metric {
  std::string name;
  PairList labels;
  double value = 0;
  bool has_value = false;
};

struct Event {
  std::string kind;
  std::uint64_t severity = 0;
};

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// "2026-11-25T05:55:00.123456789Z" (rfc3339_ns) in Unix ms; false when it is not that shape.
bool parse_rfc3339_ms(std::string_view s, std::int64_t& ms) {
  auto num = [&s](std::size_t at, std::size_t n, unsigned& v) {
    if (at + n > s.size()) {
      return false;
    }
    auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + n, v);
    return ec == std::errc{} && p == s.data() + at + n;
  };
  unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s.back() != 'Z' || !num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) ||
      !num(11, 2, h) || !num(14, 2, mi) || !num(17, 2, sec) || mo < 1 || mo > 12 || d < 1 ||
      d > 31) {
    return false;
  }
  std::int64_t frac_ms = 0;
  if (s[19] == '.') {
    int digits = 0;
    for (std::size_t i = 20; i + 1 < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') {
        return false;
      }
      if (digits++ < 3) {
        frac_ms = frac_ms * 10 + (s[i] - '0');
      }
    }
    for (; digits < 3; ++digits) {
      frac_ms *= 10;
    }
  } else if (s.size() != 20) {
    return false;
  }
  ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000) + frac_ms;
  return true;
}

// Sorts a sample's few labels by name, stably (equal names keep their order), in place:
// std::stable_sort would allocate a buffer per sample.
void sort_labels(std::vector<std::pair<std::string_view, std::string_view>>& labels) {
  for (std::size_t i = 1; i < labels.size(); ++i) {
    for (std::size_t j = i; j > 0 && labels[j].first < labels[j - 1].first; --j) {
      std::swap(labels[j], labels[j - 1]);
    }
  }
}

}  // namespace

// What one line holds, kept between lines (strings keep their capacity).
struct WriteRequestBuilder::Scratch {
  std::string type, node, time, key, severity;
  std::string head;  // a report line's header, closed (fast_read)
  std::uint64_t time_ns = 0, from_seq = 0, to_seq = 0;
  bool has_time_ns = false;
  PairList node_labels;
  std::vector<Metric> metrics;
  std::size_t n_metrics = 0;
  std::vector<Event> events;
  std::size_t n_events = 0;
  // The labels of the sample being added: views into the above, then sorted.
  std::vector<std::pair<std::string_view, std::string_view>> labels;
  std::vector<std::string> renamed;  // exported_<name>
  std::vector<std::pair<std::size_t, std::uint64_t>> event_counts;  // index into events, count

  void clear() {
    type.clear();
    node.clear();
    time.clear();
    time_ns = from_seq = to_seq = 0;
    has_time_ns = false;
    node_labels.clear();
    n_metrics = 0;
    n_events = 0;
  }
  Metric& next_metric() {
    if (n_metrics == metrics.size()) {
      metrics.emplace_back();
    }
    Metric& m = metrics[n_metrics++];
    m.name.clear();
    m.labels.clear();
    m.has_value = false;
    return m;
  }
  Event& next_event() {
    if (n_events == events.size()) {
      events.emplace_back();
    }
    Event& e = events[n_events++];
    e.kind.clear();
    e.severity = 0;
    return e;
  }
};

struct WriteRequestBuilder::Series {
  std::vector<std::string> strings;  // name, value, name, value …: what labels point into
  std::vector<Prometheus__Label> labels;
  std::vector<Prometheus__Label*> label_ptrs;
  std::vector<Prometheus__Sample> samples;
  std::vector<Prometheus__Sample*> sample_ptrs;
  Prometheus__TimeSeries ts = PROMETHEUS__TIME_SERIES__INIT;
};

namespace {

// nlohmann's SAX interface over one sink line, into the builder's scratch. The lexer hands
// every string in its own reused buffer, so reading a line allocates nothing once the scratch
// has grown to the lines' size.
class LineReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  enum class Where {
    top,            // depth 1: a record's keys
    node_labels,    // "labels":{…} at depth 2
    metrics,        // "metrics":[…]
    metric,         // one {…} in metrics
    metric_labels,  // its "labels":{…}
    events,         // "events":[…]
    event,          // one {…} in events
    skip,           // anything else, to its end
  };

  explicit LineReader(WriteRequestBuilder::Scratch& s) : s_(s) {}

  bool null() override { return value_done(); }
  bool boolean(bool) override { return value_done(); }
  bool number_integer(number_integer_t v) override {
    return number(static_cast<double>(v), v < 0 ? 0 : static_cast<std::uint64_t>(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    return number(static_cast<double>(v), v);
  }
  bool number_float(number_float_t v, const string_t&) override { return number(v, 0); }
  bool binary(binary_t&) override { return value_done(); }
  bool string(string_t& val) override {
    if (skip_depth_ == 0) {
      switch (where_) {
        case Where::top:
          if (key_ == "type") {
            s_.type.assign(val);
          } else if (key_ == "node") {
            s_.node.assign(val);
          } else if (key_ == "time") {
            s_.time.assign(val);
          }
          break;
        case Where::node_labels:
          if (!val.empty()) {
            auto& p = s_.node_labels.next();
            p.first.assign(key_);
            p.second.assign(val);
          }
          break;
        case Where::metric:
          if (key_ == "name") {
            metric_->name.assign(val);
          }
          break;
        case Where::metric_labels:
          if (!val.empty()) {
            auto& p = metric_->labels.next();
            p.first.assign(key_);
            p.second.assign(val);
          }
          break;
        case Where::event:
          if (key_ == "kind") {
            event_->kind.assign(val);
          }
          break;
        default:
          break;
      }
    }
    return value_done();
  }
  bool start_object(std::size_t) override {
    if (skip_depth_ > 0) {
      ++skip_depth_;
      return true;
    }
    ++depth_;
    if (depth_ == 1) {
      where_ = Where::top;
      return true;
    }
    switch (where_) {
      case Where::top:
        if (key_ == "labels" && depth_ == 2) {
          where_ = Where::node_labels;
          return true;
        }
        break;
      case Where::metrics:
        metric_ = &s_.next_metric();
        where_ = Where::metric;
        return true;
      case Where::metric:
        if (key_ == "labels") {
          where_ = Where::metric_labels;
          return true;
        }
        break;
      case Where::events:
        event_ = &s_.next_event();
        where_ = Where::event;
        return true;
      default:
        break;
    }
    --depth_;
    skip_depth_ = 1;
    return true;
  }
  bool end_object() override {
    if (skip_depth_ > 0) {
      --skip_depth_;
      return value_done();
    }
    --depth_;
    switch (where_) {
      case Where::node_labels:
        where_ = Where::top;
        break;
      case Where::metric:
        where_ = Where::metrics;
        break;
      case Where::metric_labels:
        where_ = Where::metric;
        break;
      case Where::event:
        where_ = Where::events;
        break;
      default:
        break;
    }
    return true;
  }
  bool start_array(std::size_t) override {
    if (skip_depth_ > 0) {
      ++skip_depth_;
      return true;
    }
    if (where_ == Where::top && depth_ == 1 && (key_ == "metrics" || key_ == "events")) {
      ++depth_;
      where_ = key_ == "metrics" ? Where::metrics : Where::events;
      return true;
    }
    skip_depth_ = 1;
    return true;
  }
  bool end_array() override {
    if (skip_depth_ > 0) {
      --skip_depth_;
      return value_done();
    }
    --depth_;
    where_ = Where::top;
    return true;
  }
  bool key(string_t& val) override {
    if (skip_depth_ == 0) {
      key_.assign(val);
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }
  bool top_is_object() const { return seen_object_; }

 private:
  bool number(double d, std::uint64_t u) {
    if (skip_depth_ == 0) {
      if (where_ == Where::top) {
        if (key_ == "time_ns") {
          s_.time_ns = u;
          s_.has_time_ns = true;
        } else if (key_ == "from_seq") {
          s_.from_seq = u;
        } else if (key_ == "to_seq") {
          s_.to_seq = u;
        }
      } else if (where_ == Where::metric && key_ == "value") {
        metric_->value = d;
        metric_->has_value = true;
      } else if (where_ == Where::event && key_ == "severity") {
        event_->severity = u;
      }
    }
    return value_done();
  }
  bool value_done() {
    seen_object_ = seen_object_ || depth_ > 0;
    return true;
  }

  WriteRequestBuilder::Scratch& s_;
  Where where_ = Where::top;
  std::string key_;
  Metric* metric_ = nullptr;
  Event* event_ = nullptr;
  int depth_ = 0;
  int skip_depth_ = 0;
  bool seen_object_ = false;
};

}  // namespace

WriteRequestBuilder::WriteRequestBuilder(std::string job)
    : job_(std::move(job)), scratch_(std::make_unique<Scratch>()) {}

WriteRequestBuilder::~WriteRequestBuilder() = default;

void WriteRequestBuilder::clear() {
  for (Series* s : used_) {
    s->samples.clear();
  }
  used_.clear();
  samples_ = 0;
  max_ms_ = min_ms_ = 0;
  // Series come and go (nodes, GPUs, disks): a map grown past this is started again.
  if (series_.size() > 100000) {
    series_.clear();
  }
}

// The labels in scratch_->labels (the sample's, unsorted) are sorted, made unique by Prometheus'
// rule, and looked up by their text.
WriteRequestBuilder::Series& WriteRequestBuilder::series_for(std::string_view name) {
  Scratch& s = *scratch_;
  auto& labels = s.labels;
  // Later entries win (series < node < instance/job): a stable sort keeps that order among equal
  // names, and every loser but the last is renamed.
  sort_labels(labels);
  s.renamed.reserve(labels.size());  // views into it are taken: it must not move its strings
  for (std::size_t i = 0; i + 1 < labels.size(); ++i) {
    if (labels[i].first == labels[i + 1].first) {
      s.renamed.push_back("exported_" + std::string(labels[i].first));
      labels[i].first = s.renamed.back();
    }
  }
  if (!s.renamed.empty()) {
    sort_labels(labels);
  }
  s.key.clear();
  s.key.append(name);
  for (const auto& [k, v] : labels) {
    s.key += '\xff';
    s.key.append(k);
    s.key += '\xfe';
    s.key.append(v);
  }
  auto it = series_.find(s.key);
  if (it == series_.end()) {
    auto series = std::make_unique<Series>();
    Series& ser = *series;
    ser.strings.reserve(labels.size() * 2);
    for (const auto& [k, v] : labels) {
      ser.strings.emplace_back(k);
      ser.strings.emplace_back(v);
    }
    ser.labels.resize(labels.size());
    ser.label_ptrs.resize(labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
      ser.labels[i] = PROMETHEUS__LABEL__INIT;
      ser.labels[i].name = ser.strings[2 * i].data();
      ser.labels[i].value = ser.strings[2 * i + 1].data();
      ser.label_ptrs[i] = &ser.labels[i];
    }
    it = series_.emplace(s.key, std::move(series)).first;
  }
  s.renamed.clear();
  return *it->second;
}

void WriteRequestBuilder::add_sample(std::string_view name, double value, std::int64_t ms) {
  Series& ser = series_for(name);
  if (ser.samples.empty()) {
    used_.push_back(&ser);
  }
  Prometheus__Sample sample = PROMETHEUS__SAMPLE__INIT;
  sample.value = value;
  sample.timestamp = ms;
  ser.samples.push_back(sample);
  if (samples_++ == 0) {
    min_ms_ = max_ms_ = ms;
  } else {
    min_ms_ = std::min(min_ms_, ms);
    max_ms_ = std::max(max_ms_, ms);
  }
}

// The labels every sample of the line carries last (they win): instance and job.
void WriteRequestBuilder::set_node(std::string_view node) {
  scratch_->labels.emplace_back("instance", node);
  scratch_->labels.emplace_back("job", job_);
}

namespace {

bool sax_read(std::string_view text, WriteRequestBuilder::Scratch& s) {
  LineReader reader(s);
  const bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &reader,
                                            nlohmann::json::input_format_t::json,
                                            /*strict=*/true, /*ignore_comments=*/false);
  return ok && reader.top_is_object();
}

// The metrics array as RecordWriter writes it, `[{"name":"…","labels":{"k":"v",…},"value":N},…]`,
// read without a JSON lexer: most of a report line, and most of the time nlohmann's SAX took
// (bench/remote_write_cpu.sh: 1.63 us per sample with SAX only, 1.17 with this; vmagent 0.8).
// False at anything
// else (an escape, another order, spaces): the caller reads the line with the SAX reader then.
class MetricsScanner {
 public:
  MetricsScanner(std::string_view text, WriteRequestBuilder::Scratch& s) : t_(text), s_(s) {}

  bool scan() {
    if (!eat("[")) {
      return false;
    }
    if (eat("]")) {
      return true;
    }
    while (true) {
      Metric& m = s_.next_metric();
      std::string_view name;
      if (!eat("{\"name\":\"") || !plain(name) || !eat(",\"labels\":{")) {
        return false;
      }
      m.name.assign(name);
      if (!eat("}")) {
        while (true) {
          std::string_view k, v;
          if (!eat("\"") || !plain(k) || !eat(":\"") || !plain(v)) {
            return false;
          }
          if (!v.empty()) {
            auto& p = m.labels.next();
            p.first.assign(k);
            p.second.assign(v);
          }
          if (eat("}")) {
            break;
          }
          if (!eat(",")) {
            return false;
          }
        }
      }
      if (!eat(",\"value\":")) {
        return false;
      }
      const char* end = t_.data() + t_.size();
      auto [p, ec] = std::from_chars(t_.data() + at_, end, m.value);
      if (ec != std::errc{} || p == t_.data() + at_) {
        return false;
      }
      at_ = static_cast<std::size_t>(p - t_.data());
      m.has_value = true;
      if (!eat("}")) {
        return false;
      }
      if (eat("]")) {
        return at_ == t_.size();
      }
      if (!eat(",")) {
        return false;
      }
    }
  }

 private:
  bool eat(std::string_view what) {
    if (t_.substr(at_).starts_with(what)) {
      at_ += what.size();
      return true;
    }
    return false;
  }
  // The rest of a string whose opening quote was eaten, up to its closing quote (eaten too);
  // false at an escape or a control character.
  bool plain(std::string_view& out) {
    const std::size_t begin = at_;
    for (; at_ < t_.size(); ++at_) {
      const char c = t_[at_];
      if (c == '"') {
        out = t_.substr(begin, at_ - begin);
        ++at_;
        return true;
      }
      if (c == '\\' || static_cast<unsigned char>(c) < 0x20) {
        return false;
      }
    }
    return false;
  }

  std::string_view t_;
  WriteRequestBuilder::Scratch& s_;
  std::size_t at_ = 0;
};

// A report line in RecordWriter's layout: everything before `,"metrics":` closed with '}' is a
// JSON object the SAX reader reads (small: header, labels, events), and the metrics are scanned.
bool fast_read(std::string_view line, WriteRequestBuilder::Scratch& s) {
  constexpr std::string_view kMetrics = ",\"metrics\":";
  constexpr std::string_view kRaw = ",\"raw\":\"";
  if (!line.starts_with("{\"type\":\"report\",")) {
    return false;
  }
  const std::size_t raw = line.rfind(kRaw);
  const std::size_t metrics = raw == std::string_view::npos ? raw : line.rfind(kMetrics, raw);
  if (metrics == std::string_view::npos) {
    return false;
  }
  s.head.assign(line.substr(0, metrics));
  s.head += '}';
  if (!sax_read(s.head, s) || s.n_metrics != 0) {
    return false;
  }
  return MetricsScanner(line.substr(metrics + kMetrics.size(), raw - metrics - kMetrics.size()), s)
      .scan();
}

}  // namespace

platform::Result<std::size_t> WriteRequestBuilder::add_line(std::string_view line) {
  Scratch& s = *scratch_;
  s.clear();
  bool ok = fast_read(line, s);
  if (ok) {
    ++scanned_;
  } else {
    s.clear();
    ok = sax_read(line, s);
  }
  if (!ok || s.type.empty() || s.node.empty()) {
    return platform::fail(std::errc::invalid_argument, "not a sink record");
  }
  const std::size_t before = samples_;
  if (s.type == "report") {
    if (!s.has_time_ns) {
      return platform::fail(std::errc::invalid_argument, "report without time_ns");
    }
    const auto ms = static_cast<std::int64_t>(s.time_ns / 1000000);
    for (std::size_t i = 0; i < s.n_metrics; ++i) {
      const Metric& m = s.metrics[i];
      if (m.name.empty() || !m.has_value) {
        continue;
      }
      s.labels.clear();
      s.labels.emplace_back("__name__", m.name);
      for (std::size_t j = 0; j < m.labels.size; ++j) {
        s.labels.emplace_back(m.labels.items[j].first, m.labels.items[j].second);
      }
      for (std::size_t j = 0; j < s.node_labels.size; ++j) {
        s.labels.emplace_back(s.node_labels.items[j].first, s.node_labels.items[j].second);
      }
      set_node(s.node);
      add_sample(m.name, m.value, ms);
    }
    // Events: one sample per kind and severity, the count in this report.
    s.event_counts.clear();
    for (std::size_t i = 0; i < s.n_events; ++i) {
      auto same = std::find_if(s.event_counts.begin(), s.event_counts.end(), [&](const auto& c) {
        return s.events[c.first].kind == s.events[i].kind &&
               s.events[c.first].severity == s.events[i].severity;
      });
      if (same == s.event_counts.end()) {
        s.event_counts.emplace_back(i, 1);
      } else {
        ++same->second;
      }
    }
    for (const auto& [i, count] : s.event_counts) {
      constexpr std::string_view kName = "gridnode_report_events";
      s.severity = std::to_string(s.events[i].severity);
      s.labels.clear();
      s.labels.emplace_back("__name__", kName);
      s.labels.emplace_back("kind", s.events[i].kind);
      s.labels.emplace_back("severity", s.severity);
      for (std::size_t j = 0; j < s.node_labels.size; ++j) {
        s.labels.emplace_back(s.node_labels.items[j].first, s.node_labels.items[j].second);
      }
      set_node(s.node);
      add_sample(kName, static_cast<double>(count), ms);
    }
  } else if (s.type == "gap") {
    std::int64_t ms = 0;
    if (s.has_time_ns) {
      ms = static_cast<std::int64_t>(s.time_ns / 1000000);
    } else if (!parse_rfc3339_ms(s.time, ms)) {
      return platform::fail(std::errc::invalid_argument, "gap without a readable time");
    }
    constexpr std::string_view kName = "gridnode_report_gap";
    s.labels.clear();
    s.labels.emplace_back("__name__", kName);
    set_node(s.node);
    const std::uint64_t dropped = s.to_seq >= s.from_seq ? s.to_seq - s.from_seq + 1 : 0;
    add_sample(kName, static_cast<double>(dropped), ms);
  }
  return samples_ - before;
}

void WriteRequestBuilder::finish(std::string& out) {
  // protobuf-c packs from pointer arrays: they are set here, once the vectors stopped moving.
  std::vector<Prometheus__TimeSeries*>& ts_ptrs = ts_ptrs_;
  ts_ptrs.clear();
  for (Series* s : used_) {
    s->sample_ptrs.resize(s->samples.size());
    for (std::size_t i = 0; i < s->samples.size(); ++i) {
      s->sample_ptrs[i] = &s->samples[i];
    }
    s->ts.n_labels = s->label_ptrs.size();
    s->ts.labels = s->label_ptrs.data();
    s->ts.n_samples = s->sample_ptrs.size();
    s->ts.samples = s->sample_ptrs.data();
    ts_ptrs.push_back(&s->ts);
  }
  Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
  req.n_timeseries = ts_ptrs.size();
  req.timeseries = ts_ptrs.data();
  packed_.resize(prometheus__write_request__get_packed_size(&req));
  const std::size_t n = prometheus__write_request__pack(
      &req, reinterpret_cast<std::uint8_t*>(packed_.data()));
  packed_.resize(n);
  std::size_t length = snappy_max_compressed_length(packed_.size());
  out.resize(length);
  // snappy_compress fails only when the buffer is too small, and it is snappy's own bound.
  (void)snappy_compress(packed_.data(), packed_.size(), out.data(), &length);
  out.resize(length);
}

}  // namespace gridnode::collector
