// The `kiln` command: evaluate expressions over .npy files, show what kiln runs on, and
// measure it (bench, demo live in benchmarks/bench.cpp).
//
//   kiln eval 'sqrt(a*a + b*b)' a=x.npy b=y.npy [-o r.npy] [--threads N]
//   kiln explain 'expr' a=f64[1000,300] b=f32[300]
//   kiln info | kiln ops | kiln bench [--n N] [--reps R] [--json] [--suite ... [--plot FILE.svg]] | kiln demo [--n N]
//
// Exit codes: 0 success, 1 evaluation or I/O error, 2 usage error.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"
#include "npy.hpp"

namespace kiln::cli {
int run_bench(int argc, char** argv);
int run_demo(int argc, char** argv);
}  // namespace kiln::cli

namespace {

const char* const kUsage =
    "usage: kiln <command> [...]\n"
    "  eval EXPR NAME=FILE.npy... [-o OUT.npy] [--threads N]\n"
    "        evaluate EXPR over .npy files; without -o, print the result\n"
    "  explain EXPR NAME=DTYPE[SHAPE]...   show the fused plan, e.g. a=f64[1000,300]\n"
    "  info                                 version, SIMD instruction set, threads\n"
    "  ops                                  the op table, as Markdown\n"
    "  bench [--n N] [--reps R] [--threads 1,2,..] [--json] [--crossover]\n"
    "  bench --suite [--sizes 1e5,1e6,1e7,1e8] [--reps R] [--json] [--plot FILE.svg]\n"
    "                                       fused vs unfused vs memory bandwidth\n"
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
      case kiln::DType::Bool: std::printf("%s", c.data_as<bool>()[i] ? "True" : "False"); break;
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

int cmd_eval(int argc, char** argv) {
  if (argc < 1) return usage_error("eval needs an expression");
  std::string expr = argv[0], out_path;
  kiln::Bindings inputs;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], name, value;
    if (arg == "-o" || arg == "--out") {
      if (++i >= argc) return usage_error(arg + " needs a file name");
      out_path = argv[i];
    } else if (arg == "--threads") {
      if (++i >= argc) return usage_error("--threads needs a number");
      kiln::set_num_threads(std::atoi(argv[i]));
    } else if (split_binding(arg, name, value)) {
      inputs.emplace_back(name, kiln::load_npy(value));
    } else {
      return usage_error("expected NAME=FILE.npy, got '" + arg + "'");
    }
  }
  kiln::Array r = kiln::eval(expr, inputs);
  if (out_path.empty()) print_array(r);
  else kiln::save_npy(out_path, r);
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

// The op table as a Markdown table: the guide's op list is this output.
int cmd_ops() {
  std::printf("| op | operator | operands | dtypes |\n|---|---|---|---|\n");
  for (const kiln::OpInfo& op : kiln::kOpInfo)
    std::printf("| `%s` | %s | %d | %s |\n", op.name, *op.symbol ? op.symbol : "", op.arity,
                kiln::rule_description(op.rule));
  return 0;
}

int cmd_info() {
  std::printf("kiln %s\n", kiln::version());
  std::string isas;
  for (const std::string& s : kiln::available_simd_isas()) isas += (isas.empty() ? "" : ", ") + s;
  std::printf("simd: %s (available: %s; KILN_SIMD=<set> forces one)\n", kiln::simd_isa().c_str(), isas.c_str());
  std::printf("threads: %d (KILN_NUM_THREADS or --threads to change)\n", kiln::get_num_threads());
  std::printf("blas: none yet (linear algebra is a later issue)\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("no command given");
  std::string cmd = argv[1];
  try {
    if (const char* t = std::getenv("KILN_NUM_THREADS")) kiln::set_num_threads(std::atoi(t));
    if (cmd == "eval") return cmd_eval(argc - 2, argv + 2);
    if (cmd == "explain") return cmd_explain(argc - 2, argv + 2);
    if (cmd == "info") return cmd_info();
    if (cmd == "ops") return cmd_ops();
    if (cmd == "bench") return kiln::cli::run_bench(argc - 2, argv + 2);
    if (cmd == "demo") return kiln::cli::run_demo(argc - 2, argv + 2);
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
