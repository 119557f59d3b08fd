// The `kiln` command: evaluate expressions over .npy files, show what kiln runs on, and
// measure it (bench, demo live in benchmarks/bench.cpp).
//
//   kiln eval 'sqrt(a*a + b*b)' a=x.npy b=y.npz:b [-o r.npy] [--threads N]
//   kiln explain 'expr' a=f64[1000,300] b=f32[300]
//   kiln info [FILE.npy|FILE.npz...] | kiln convert IN OUT [--dtype D] [--compress] | kiln ops
//   kiln bench [--n N] [--reps R] [--json] [--suite ... [--plot FILE.svg]] [--io ...] | kiln demo [--n N]
//
// Exit codes: 0 success, 1 evaluation or I/O error, 2 usage error.
#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/kiln.hpp"
#include "npy.hpp"
#include "npz.hpp"
#include "parser.hpp"
#include "shm.hpp"

namespace kiln::cli {
int run_bench(int argc, char** argv);
int run_demo(int argc, char** argv);
}  // namespace kiln::cli

namespace {

const char* const kUsage =
    "usage: kiln <command> [...]\n"
    "  eval EXPR NAME=FILE.npy... [-o OUT.npy|OUT.npz] [--threads N]\n"
    "        evaluate EXPR over .npy files (mapped, not read) or .npz members (NAME=F.npz:KEY,\n"
    "        or NAME=F.npz for its member NAME); without -o, print the result\n"
    "  explain EXPR NAME=DTYPE[SHAPE]...   show the fused plan, e.g. a=f64[1000,300]\n"
    "  info                                 version, SIMD instruction set, threads\n"
    "  info FILE.npy|FILE.npz...            header, dtype, shape, order; min/max/mean, NaN count\n"
    "  convert IN OUT [--dtype D] [--compress]\n"
    "        between .npy and .npz (IN.npz:KEY picks a member), casting to D if given\n"
    "  ops                                  the op table, as Markdown\n"
    "  bench [--n N] [--reps R] [--threads 1,2,..] [--json] [--crossover]\n"
    "  bench --suite [--sizes 1e5,1e6,1e7,1e8] [--reps R] [--json] [--plot FILE.svg]\n"
    "                                       fused vs unfused vs memory bandwidth\n"
    "  bench --io [--mb 800] [--files 1000] [--kb 8] [--dir D] [--numpy benchmarks/io_numpy.py]\n"
    "                                       .npy save/load/mmap vs NumPy and raw reads\n"
    "  bench --create | --linalg [--n N] [--reps R]\n"
    "                                       creation and random numbers; GEMM vs direct cblas\n"
    "  bench --shm [--mb 800] [--reps R]    arrays to worker processes: kiln segments vs pickling\n"
    "  shm list                             shared segments in /dev/shm: name, size, dtype and shape\n"
    "  shm rm NAME...                       remove segments (left by a crashed process, say)\n"
    "  demo [--n N]                         example expressions over generated .npy files\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "kiln: %s\n%s", message.c_str(), kUsage);
  return 2;
}

bool split_binding(const std::string& arg, std::string& name, std::string& value) {
  size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  name = arg.substr(0, eq);
  value = arg.substr(eq + 1);
  return true;
}

void print_array(const kiln::Array& a) {
  std::printf("%s %s\n", kiln::dtype_name(a.dtype()), kiln::shape_str(a.shape()).c_str());
  kiln::Array c = a.copy();
  int64_t n = c.size(), shown = n > 20 ? 10 : n;
  auto show = [&](int64_t i) {
    switch (c.dtype()) {
      case kiln::DType::Bool: std::printf("%s", c.data_as<unsigned char>()[i] ? "True" : "False"); break;
      case kiln::DType::Int32: std::printf("%d", c.data_as<int32_t>()[i]); break;
      case kiln::DType::Int64: std::printf("%lld", static_cast<long long>(c.data_as<int64_t>()[i])); break;
      case kiln::DType::Float32: std::printf("%.9g", c.data_as<float>()[i]); break;
      case kiln::DType::Float64: std::printf("%.17g", c.data_as<double>()[i]); break;
    }
  };
  std::printf("[");
  for (int64_t i = 0; i < shown; ++i) {
    if (i) std::printf(", ");
    show(i);
  }
  if (n > shown) {
    std::printf(", ..., ");
    show(n - 1);
  }
  std::printf("]\n");
}

// A progress bar on stderr for loads and saves that take a while, only on a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(std::string what) : what_(std::move(what)), start_(std::chrono::steady_clock::now()) {}
  ~ProgressBar() {
    if (shown_) std::fprintf(stderr, "\n");
  }
  kiln::IoProgress callback() {
    if (!::isatty(STDERR_FILENO)) return {};
    return [this](uint64_t done, uint64_t total) { show(done, total); };
  }

 private:
  void show(uint64_t done, uint64_t total) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (total < (uint64_t{64} << 20) || (secs < 0.25 && done < total)) return;
    shown_ = true;
    int width = 30, filled = static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total));
    std::fprintf(stderr, "\r%s [%s%s] %3d%%  %.0f MB  %.2f GB/s ", what_.c_str(), std::string(filled, '#').c_str(),
                 std::string(width - filled, ' ').c_str(), static_cast<int>(100.0 * done / total), done / 1e6,
                 done / 1e9 / std::max(secs, 1e-9));
  }
  std::string what_;
  std::chrono::steady_clock::time_point start_;
  bool shown_ = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "F.npz:KEY" -> (F.npz, KEY); anything else -> (spec, "").
std::pair<std::string, std::string> split_member(const std::string& spec) {
  size_t colon = spec.rfind(':');
  if (colon != std::string::npos && ends_with(spec.substr(0, colon), ".npz"))
    return {spec.substr(0, colon), spec.substr(colon + 1)};
  return {spec, ""};
}

// The input files of one command: .npy files mapped (or read, with a progress bar), and
// .npz members, each archive loaded once however many of its members are named.
class InputFiles {
 public:
  kiln::Array get(const std::string& spec, const std::string& default_key, bool map) {
    auto [path, key] = split_member(spec);
    if (ends_with(path, ".npz")) return member(path, key.empty() ? default_key : key);
    if (map) return kiln::load_npy(path, kiln::NpyLoad::MmapReadOnly);  // inputs are only read
    ProgressBar bar("load " + path);
    return kiln::load_npy(path, kiln::NpyLoad::Read, bar.callback());
  }

 private:
  kiln::Array member(const std::string& path, const std::string& key) {
    auto it = archives_.find(path);
    if (it == archives_.end()) it = archives_.emplace(path, kiln::load_npz(path)).first;
    const std::vector<kiln::NpzMember>& members = it->second;
    std::string keys;
    for (const kiln::NpzMember& m : members) {
      if (m.name == key || (key.empty() && members.size() == 1)) return m.array;
      keys += (keys.empty() ? "" : ", ") + m.name;
    }
    throw kiln::Error(kiln::Status::IOError, path + ": " +
                                                 (key.empty() ? "holds " + std::to_string(members.size()) +
                                                                    " arrays; name one as FILE.npz:KEY"
                                                              : "no member '" + key + "'") +
                                                 " (members: " + keys + ")");
  }
  std::map<std::string, std::vector<kiln::NpzMember>> archives_;
};

void save_output(const std::string& path, const kiln::Array& a, bool compress) {
  if (ends_with(path, ".npz")) {
    kiln::save_npz(path, {{"arr_0", a}}, compress);  // numpy.savez's name for a positional array
    return;
  }
  ProgressBar bar("save " + path);
  kiln::save_npy(path, a, false, bar.callback());
}

int cmd_eval(int argc, char** argv) {
  if (argc < 1) return usage_error("eval needs an expression");
  std::string expr = argv[0], out_path;
  kiln::Bindings inputs;
  InputFiles files;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], name, value;
    if (arg == "-o" || arg == "--out") {
      if (++i >= argc) return usage_error(arg + " needs a file name");
      out_path = argv[i];
    } else if (arg == "--threads") {
      if (++i >= argc) return usage_error("--threads needs a number");
      kiln::set_num_threads(std::atoi(argv[i]));
    } else if (split_binding(arg, name, value)) {
      inputs.emplace_back(name, files.get(value, name, /*map=*/true));
    } else {
      return usage_error("expected NAME=FILE.npy, got '" + arg + "'");
    }
  }
  kiln::Array r = kiln::eval(expr, inputs);
  if (out_path.empty()) print_array(r);
  else save_output(out_path, r, false);
  return 0;
}

// min/max/mean (NaN ignored for min and max) and the NaN count, computed by kiln itself.
void print_summary(const kiln::Array& a) {
  if (a.size() == 0) {
    std::printf("  summary: empty\n");
    return;
  }
  // One program, so every reduction shares one pass over the data.
  bool is_float = a.dtype() == kiln::DType::Float32 || a.dtype() == kiln::DType::Float64;
  std::string program = "m = float64(mean(a)); ";
  program += is_float ? "n = float64(sum(isnan(a))); lo = float64(min(where(isnan(a), inf, a))); "
                        "hi = float64(max(where(isnan(a), -inf, a))); s = float64(sum(where(isnan(a), 0, a)))"
                      : "n = 0.0; lo = float64(min(a)); hi = float64(max(a)); s = 0.0";
  std::vector<kiln::Array> r = kiln::eval_many(program, {{"a", a}}, {"m", "n", "lo", "hi", "s"});
  auto value = [&](int k) { return r[k].data_as<double>()[0]; };
  double nans = value(1);
  if (nans == static_cast<double>(a.size())) {
    std::printf("  summary: all %lld values are NaN\n", static_cast<long long>(a.size()));
    return;
  }
  double mean = nans > 0 ? value(4) / (static_cast<double>(a.size()) - nans) : value(0);
  std::printf("  summary: min %.17g  max %.17g  mean %.17g  NaN %lld%s\n", value(2), value(3), mean,
              static_cast<long long>(nans), nans > 0 ? " (min, max and mean of the others)" : "");
}

void print_array_info(const kiln::Array& a) {
  std::printf("  dtype %s  shape %s  %lld elements, %lld bytes\n", kiln::dtype_name(a.dtype()),
              kiln::shape_str(a.shape()).c_str(), static_cast<long long>(a.size()),
              static_cast<long long>(a.size() * static_cast<int64_t>(a.itemsize())));
  print_summary(a);
}

int cmd_info_files(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string path = argv[i];
    if (ends_with(path, ".npz")) {
      std::vector<kiln::NpzMember> members = kiln::load_npz(path);
      std::printf("%s: .npz archive, %zu members\n", path.c_str(), members.size());
      for (const kiln::NpzMember& m : members) {
        std::printf(" %s\n", m.name.c_str());
        print_array_info(m.array);
      }
      continue;
    }
    kiln::NpyHeader h = kiln::read_npy_header(path);
    std::printf("%s: .npy version %d.0, descr '%s' (%s), %s order, data at byte %llu of %llu\n", path.c_str(),
                h.version, h.descr.c_str(),
                h.descr[0] == '>' ? "big-endian" : h.descr[0] == '|' ? "no byte order" : "little-endian",
                h.fortran ? "Fortran" : "C", static_cast<unsigned long long>(h.data_offset),
                static_cast<unsigned long long>(h.file_size));
    print_array_info(kiln::load_npy(path, kiln::NpyLoad::MmapReadOnly));
  }
  return 0;
}

int cmd_convert(int argc, char** argv) {
  std::string in, out, dtype;
  bool compress = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--dtype") {
      if (++i >= argc) return usage_error("--dtype needs a dtype name");
      dtype = argv[i];
    } else if (arg == "--compress") {
      compress = true;
    } else if (in.empty()) {
      in = arg;
    } else if (out.empty()) {
      out = arg;
    } else {
      return usage_error("convert takes one input and one output, got '" + arg + "'");
    }
  }
  if (out.empty()) return usage_error("convert needs IN and OUT");
  kiln::DType d;
  if (!dtype.empty() && !kiln::dtype_from_name(dtype, d)) return usage_error("unknown dtype '" + dtype + "'");
  // Read, not mapped: the whole file is needed anyway, and a long read shows its progress.
  kiln::Array a = InputFiles().get(in, "", /*map=*/false);
  if (!dtype.empty()) a = kiln::eval(dtype + "(a)", {{"a", a}});
  save_output(out, a, compress);
  return 0;
}

// "f64[1000,300]", "int32[]" -> an uninitialised array of that dtype and shape (explain
// only plans; nothing is computed).
bool parse_spec(const std::string& spec, kiln::Array& out) {
  size_t open = spec.find('[');
  if (open == std::string::npos || spec.back() != ']') return false;
  std::string t = spec.substr(0, open);
  static const std::pair<const char*, kiln::DType> aliases[] = {
      {"b1", kiln::DType::Bool}, {"i4", kiln::DType::Int32}, {"i8", kiln::DType::Int64},
      {"f4", kiln::DType::Float32}, {"f8", kiln::DType::Float64}, {"f32", kiln::DType::Float32},
      {"f64", kiln::DType::Float64}, {"i32", kiln::DType::Int32}, {"i64", kiln::DType::Int64}};
  kiln::DType d;
  bool known = kiln::dtype_from_name(t, d);
  for (const auto& [alias, dt] : aliases)
    if (t == alias) { d = dt; known = true; }
  if (!known) return false;
  kiln::Shape shape;
  std::string dims = spec.substr(open + 1, spec.size() - open - 2);
  size_t pos = 0;
  while (pos < dims.size()) {
    size_t comma = dims.find(',', pos);
    std::string part = dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v < 0) return false;
    shape.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  // Zero-size stand-in with the right shape: a plan depends on dtypes only.
  static char dummy[64];
  out = kiln::Array::wrap(dummy, d, shape, kiln::Shape(shape.size(), 0), {});
  return true;
}

int cmd_explain(int argc, char** argv) {
  if (argc < 1) return usage_error("explain needs an expression");
  kiln::Bindings inputs;
  for (int i = 1; i < argc; ++i) {
    std::string name, value;
    kiln::Array a;
    if (!split_binding(argv[i], name, value) || !parse_spec(value, a))
      return usage_error(std::string("expected NAME=DTYPE[SHAPE] such as a=f64[1000,300], got '") + argv[i] + "'");
    inputs.emplace_back(name, a);
  }
  std::printf("%s", kiln::explain(argv[0], inputs).c_str());
  return 0;
}

// NumPy's spelling of an op, reduction or generator (markdown), where it is not
// numpy.<name> (or numpy.linalg.<name>).
std::string numpy_column(std::string_view name, const char* module) {
  static const std::pair<std::string_view, const char*> kSpellings[] = {
      {"relu", "`numpy.maximum(x, 0)`"},
      {"sigmoid", "`1 / (1 + numpy.exp(-x))`"},
      {"random", "`numpy.random.Generator.random`"},
      {"uniform", "`numpy.random.Generator.uniform`"},
      {"standard_normal", "`numpy.random.Generator.standard_normal`"},
      {"normal", "`numpy.random.Generator.normal`"},
      {"integers", "`numpy.random.Generator.integers`"},
      {"bernoulli", "`numpy.random.Generator.random(size) < p`"},
      {"matmul", "`numpy.matmul`, `a @ b`"},
  };
  for (const auto& [n, spelling] : kSpellings)
    if (n == name) return spelling;
  return "`" + std::string(module) + std::string(name) + "`";
}

// The language's reference tables, from the op, reduction and linalg tables and the
// parser's generator list: docs/guide.md embeds this output (a test compares them).
int cmd_ops() {
  std::printf("### Element-wise ops\n\n| op | operator | operands | dtypes | NumPy |\n|---|---|---|---|---|\n");
  for (const kiln::OpInfo& op : kiln::kOpInfo) {
    std::string symbol = *op.symbol ? "`" + std::string(op.symbol) + "`" : "";
    if (std::string_view(op.symbol) == "|") symbol = "`\\|`";  // not a table cell separator
    std::printf("| `%s` | %s | %d | %s | %s |\n", op.name, symbol.c_str(), op.arity, kiln::rule_description(op.rule),
                numpy_column(op.name, "numpy.").c_str());
  }
  std::printf("\n### Reductions\n\n| function | keywords | NumPy |\n|---|---|---|\n");
  for (const kiln::ReductionInfo& r : kiln::kReductionInfo)
    std::printf("| `%s(x)` | `axis=`, `keepdims=`%s | %s |\n", r.name, r.ddof ? ", `ddof=`" : "",
                numpy_column(r.name, "numpy.").c_str());
  std::printf("\n### Linear algebra\n\n| function | operands | results | NumPy |\n|---|---|---|---|\n");
  for (const kiln::LinalgInfo& f : kiln::kLinalgInfo)
    std::printf("| `%s` | %d | %d | %s |\n", f.name, f.operands, f.results, numpy_column(f.name, "numpy.linalg.").c_str());
  std::printf("\n### Creation and random numbers\n\n| function | NumPy |\n|---|---|\n");
  for (const std::string& sig : kiln::generator_signatures()) {
    std::string name = sig.substr(0, sig.find('('));
    std::printf("| `%s` | %s |\n", sig.c_str(), numpy_column(name, "numpy.").c_str());
  }
  return 0;
}

int cmd_info() {
  std::printf("kiln %s\n", kiln::version());
  std::string isas;
  for (const std::string& s : kiln::available_simd_isas()) isas += (isas.empty() ? "" : ", ") + s;
  std::printf("simd: %s (available: %s; KILN_SIMD=<set> forces one)\n", kiln::simd_isa().c_str(), isas.c_str());
  std::printf("threads: %d (KILN_NUM_THREADS or --threads to change)\n", kiln::get_num_threads());
  std::printf("blas: %s; kiln runs it one thread per call inside its own budget\n", openblas_get_config());
  return 0;
}

int cmd_shm(int argc, char** argv) {
  std::string sub = argc > 0 ? argv[0] : "";
  if (sub == "list") {
    std::vector<kiln::shm::SegmentInfo> segments = kiln::shm::list();
    std::sort(segments.begin(), segments.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    for (const auto& s : segments)
      std::printf("%-40s %14llu bytes  %s\n", s.name.c_str(), static_cast<unsigned long long>(s.bytes), s.what.c_str());
    if (segments.empty()) std::printf("(no segments in /dev/shm)\n");
    return 0;
  }
  if (sub == "rm") {
    if (argc < 2) return usage_error("shm rm: no segment named");
    int status = 0;
    for (int i = 1; i < argc; ++i) {
      std::string name = argv[i];
      try {
        kiln::shm::remove_listed(name);
      } catch (const kiln::Error& e) {
        std::fprintf(stderr, "kiln: %s\n", e.what());
        status = 1;
      }
    }
    return status;
  }
  return usage_error("shm: expected 'list' or 'rm NAME...'");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("no command given");
  std::string cmd = argv[1];
  try {
    if (const char* t = std::getenv("KILN_NUM_THREADS")) kiln::set_num_threads(std::atoi(t));
    if (cmd == "eval") return cmd_eval(argc - 2, argv + 2);
    if (cmd == "explain") return cmd_explain(argc - 2, argv + 2);
    if (cmd == "info") return argc > 2 ? cmd_info_files(argc - 2, argv + 2) : cmd_info();
    if (cmd == "convert") return cmd_convert(argc - 2, argv + 2);
    if (cmd == "ops") return cmd_ops();
    if (cmd == "bench") return kiln::cli::run_bench(argc - 2, argv + 2);
    if (cmd == "demo") return kiln::cli::run_demo(argc - 2, argv + 2);
    if (cmd == "shm") return cmd_shm(argc - 2, argv + 2);
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::printf("%s", kUsage);
      return 0;
    }
    return usage_error("unknown command '" + cmd + "'");
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "kiln: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: %s\n", e.what());
    return 1;
  }
}
