#include "generate.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "error.hpp"

namespace kiln {

namespace {

[[noreturn]] void bad(const char* fn, const std::string& what) {
  throw Error(Status::BadArgument, std::string(fn) + ": " + what);
}

std::string shape_text(const Shape& s) {
  if (s.size() == 1) return "(" + std::to_string(s[0]) + ",)";
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + ")";
}

void check_shape(const char* fn, const Shape& shape) {
  for (int64_t d : shape)
    if (d < 0) bad(fn, "negative dimensions are not allowed, got shape " + shape_str(shape));
  shape_size(shape);  // throws on overflow
}

DType default_of(Kind k) { return k == Kind::Bool ? DType::Bool : (k == Kind::Int ? DType::Int64 : DType::Float64); }

void check_makes(Gen g, DType d, const char* fn) {
  if (!gen_makes(g, d)) throw Error(Status::TypeError, std::string(fn) + " cannot make " + dtype_name(d) + " arrays");
}

GenSpec random_spec(Gen g, uint64_t seed, const std::optional<Shape>& shape, DType dtype) {
  GenSpec s;
  s.gen = g;
  s.dtype = dtype;
  s.seed = seed;
  check_makes(g, dtype, gen_info(g).name);
  if (shape) {
    check_shape(gen_info(g).name, *shape);
    s.shape = *shape;
  } else {
    s.shape_from = GenSpec::ShapeFrom::Context;
  }
  return s;
}

bool finite(double v) { return std::isfinite(v); }

}  // namespace

GenSpec full_spec(const Shape& shape, Scalar value, std::optional<DType> dtype, const char* fn) {
  check_shape(fn, shape);
  GenSpec s;
  s.gen = Gen::full;
  s.shape = shape;
  s.a = value;
  s.dtype = dtype.value_or(default_of(value.kind));
  return s;
}

GenSpec full_like_spec(Scalar value, std::optional<DType> dtype) {
  GenSpec s;
  s.gen = Gen::full;
  s.shape_from = GenSpec::ShapeFrom::Like;
  s.a = value;
  s.dtype_like = !dtype;
  s.dtype = dtype.value_or(DType::Float64);
  return s;
}

GenSpec arange_spec(Scalar start, Scalar stop, Scalar step, std::optional<DType> dtype) {
  bool ints = start.kind != Kind::Float && stop.kind != Kind::Float && step.kind != Kind::Float;
  GenSpec s;
  s.gen = Gen::arange;
  s.dtype = dtype.value_or(ints ? DType::Int64 : DType::Float64);
  check_makes(Gen::arange, s.dtype, "arange");
  if (step.as_double() == 0) bad("arange", "step must not be zero");
  for (const Scalar* v : {&start, &stop, &step})
    if (!finite(v->as_double())) bad("arange", "arguments must be finite, got " + scalar_text(*v));
  // NumPy: ceil((stop - start) / step), exact for integers.
  int64_t length;
  if (ints) {
    __int128 span = static_cast<__int128>(stop.i) - start.i, q = span / step.i;
    if (span % step.i != 0 && ((span < 0) == (step.i < 0))) ++q;
    length = q <= 0 ? 0 : (q > std::numeric_limits<int64_t>::max() ? -1 : static_cast<int64_t>(q));
  } else {
    double q = std::ceil((stop.as_double() - start.as_double()) / step.as_double());
    length = q <= 0 ? 0 : (q >= 9.2e18 ? -1 : static_cast<int64_t>(q));
  }
  if (length < 0) bad("arange", "the result would have more than 2^63 elements");
  s.shape = {length};
  check_shape("arange", s.shape);
  s.a = start;
  s.b = stop;
  s.c = step;
  return s;
}

GenSpec linspace_spec(double start, double stop, int64_t num, bool endpoint, std::optional<DType> dtype) {
  if (num < 0) bad("linspace", "num must be non-negative, got " + std::to_string(num));
  if (!finite(start) || !finite(stop)) bad("linspace", "start and stop must be finite");
  GenSpec s;
  s.gen = Gen::linspace;
  s.dtype = dtype.value_or(DType::Float64);
  check_makes(Gen::linspace, s.dtype, "linspace");
  s.shape = {num};
  s.a = Scalar::of_float(start);
  s.b = Scalar::of_float(stop);
  s.num = num;
  s.endpoint = endpoint;
  return s;
}

GenSpec eye_spec(int64_t rows, std::optional<int64_t> cols, int64_t k, std::optional<DType> dtype) {
  GenSpec s;
  s.gen = Gen::eye;
  s.dtype = dtype.value_or(DType::Float64);
  s.shape = {rows, cols.value_or(rows)};
  check_shape("eye", s.shape);
  s.num = k;
  return s;
}

GenSpec uniform_spec(uint64_t seed, std::optional<Shape> shape, double low, double high, std::optional<DType> dtype) {
  GenSpec s = random_spec(Gen::uniform, seed, shape, dtype.value_or(DType::Float64));
  if (!finite(low) || !finite(high)) bad("uniform", "low and high must be finite");
  if (!(high > low))
    bad("uniform", "high must be greater than low, got low=" + scalar_text(Scalar::of_float(low)) +
                       ", high=" + scalar_text(Scalar::of_float(high)));
  if (s.dtype == DType::Float32 && !(static_cast<float>(high) > static_cast<float>(low)))
    bad("uniform", "low and high are the same float32 value");
  if (!finite(high - low)) bad("uniform", "high - low overflows float64");
  s.a = Scalar::of_float(low);
  s.b = Scalar::of_float(high);
  return s;
}

GenSpec normal_spec(uint64_t seed, std::optional<Shape> shape, double mean, double std, std::optional<DType> dtype) {
  GenSpec s = random_spec(Gen::normal, seed, shape, dtype.value_or(DType::Float64));
  if (!finite(mean)) bad("normal", "the mean must be finite");
  if (!(std >= 0) || !finite(std)) bad("normal", "the standard deviation must be finite and >= 0, got " + scalar_text(Scalar::of_float(std)));
  s.a = Scalar::of_float(mean);
  s.b = Scalar::of_float(std);
  return s;
}

GenSpec integers_spec(uint64_t seed, std::optional<Shape> shape, int64_t low, int64_t high, std::optional<DType> dtype) {
  GenSpec s = random_spec(Gen::integers, seed, shape, dtype.value_or(DType::Int64));
  if (high <= low) bad("integers", "high must be greater than low, got low=" + std::to_string(low) + ", high=" + std::to_string(high));
  if (s.dtype == DType::Int32 && (low < INT32_MIN || high - 1 > INT32_MAX))
    bad("integers", "[" + std::to_string(low) + ", " + std::to_string(high) + ") is out of bounds for int32");
  s.a = Scalar::of_int(low);
  s.b = Scalar::of_int(high);
  return s;
}

GenSpec bernoulli_spec(uint64_t seed, std::optional<Shape> shape, double p) {
  GenSpec s = random_spec(Gen::bernoulli, seed, shape, DType::Bool);
  if (!(p >= 0 && p <= 1)) bad("bernoulli", "p must be in [0, 1], got " + scalar_text(Scalar::of_float(p)));
  s.a = Scalar::of_float(p);
  return s;
}

simd::GenParams gen_params(const GenSpec& s, DType d, const simd::KernelTable& kernels) {
  simd::GenParams p{};
  p.seed = s.seed;
  switch (s.gen) {
    case Gen::full: store_scalar(s.a, d, p.value, kernels); break;
    case Gen::arange: {
      // NumPy fills the first two elements (start and start + step in the dtype) and
      // steps by their difference, in the dtype's arithmetic.
      Scalar second = (s.a.kind != Kind::Float && s.c.kind != Kind::Float)
                          ? Scalar::of_int(static_cast<int64_t>(static_cast<uint64_t>(s.a.i) + static_cast<uint64_t>(s.c.i)))
                          : Scalar::of_float(s.a.as_double() + s.c.as_double());
      unsigned char first_bytes[8], second_bytes[8];
      store_scalar(s.a, d, first_bytes, kernels);
      store_scalar(second, d, second_bytes, kernels);
      Scalar first = load_scalar(d, first_bytes), next = load_scalar(d, second_bytes);
      if (is_float(d)) {
        p.f[0] = first.f;
        p.f[1] = d == DType::Float32 ? static_cast<double>(static_cast<float>(next.f) - static_cast<float>(first.f))
                                     : next.f - first.f;
      } else {
        p.i[0] = first.i;
        p.i[1] = static_cast<int64_t>(static_cast<uint64_t>(next.i) - static_cast<uint64_t>(first.i));
      }
      break;
    }
    case Gen::linspace: {
      // NumPy 1.24's linspace: y = arange(num) * step + start, or (y / div) * delta +
      // start when step underflows to 0; the last element is stop when endpoint.
      double start = s.a.f, stop = s.b.f;
      int64_t div = s.endpoint ? s.num - 1 : s.num;
      double delta = stop - start;
      double step = div > 0 ? delta / static_cast<double>(div) : std::nan("");
      p.f[0] = start;
      p.f[1] = div > 0 ? step : 0.0;
      p.f[2] = stop;
      p.f[3] = static_cast<double>(div);
      p.f[4] = delta;
      p.i[0] = s.num;
      p.i[1] = s.endpoint;
      p.i[2] = div > 0 && step == 0;
      if (div <= 0) p.f[1] = 0.0;  // num == 1 (or 0): y = 0 * delta + start
      break;
    }
    case Gen::eye:
      p.i[0] = std::max<int64_t>(s.shape[1], 1);
      p.i[1] = s.num;
      break;
    case Gen::uniform: {
      double lo = s.a.f, hi = s.b.f;
      p.f[0] = lo;
      p.f[1] = hi - lo;
      p.f[2] = d == DType::Float32
                   ? static_cast<double>(static_cast<float>(hi) < hi ? static_cast<float>(hi)
                                                                     : std::nextafter(static_cast<float>(hi), -INFINITY))
                   : std::nextafter(hi, -INFINITY);
      break;
    }
    case Gen::normal:
      p.f[0] = s.a.f;
      p.f[1] = s.b.f;
      break;
    case Gen::integers:
      p.i[0] = s.a.i;
      p.i[1] = static_cast<int64_t>(static_cast<uint64_t>(s.b.i) - static_cast<uint64_t>(s.a.i));
      break;
    case Gen::bernoulli: p.f[0] = s.a.f; break;
  }
  return p;
}

std::string gen_key(const GenSpec& s) {
  std::string k = gen_info(s.gen).name;
  k += ":" + std::string(s.dtype_like ? "like" : dtype_name(s.dtype));
  k += ":" + std::to_string(static_cast<int>(s.shape_from));
  for (int64_t d : s.shape) k += "," + std::to_string(d);
  for (const Scalar* v : {&s.a, &s.b, &s.c}) {
    char buf[40];
    // Bits, not text: keeps -0.0 apart from 0.0 and ints apart from floats.
    std::snprintf(buf, sizeof buf, ";%d:%a:%lld", static_cast<int>(v->kind), v->f, static_cast<long long>(v->i));
    k += buf;
  }
  k += ";" + std::to_string(s.num) + (s.endpoint ? "e" : "") + ";" + std::to_string(s.seed);
  return k;
}

std::string gen_text(const GenSpec& s, const std::string& like) {
  std::string dtype = s.dtype_like ? "" : std::string(", dtype=") + dtype_name(s.dtype);
  std::string size = s.shape_from == GenSpec::ShapeFrom::Given ? ", size=" + shape_text(s.shape) : "";
  std::string seed = ", seed=" + std::to_string(s.seed);
  switch (s.gen) {
    case Gen::full:
      if (s.shape_from == GenSpec::ShapeFrom::Like) return "full_like(" + like + ", " + scalar_text(s.a) + dtype + ")";
      return "full(" + shape_text(s.shape) + ", " + scalar_text(s.a) + dtype + ")";
    case Gen::arange:
      return "arange(" + scalar_text(s.a) + ", " + scalar_text(s.b) + ", " + scalar_text(s.c) + dtype + ")";
    case Gen::linspace:
      return "linspace(" + scalar_text(s.a) + ", " + scalar_text(s.b) + ", " + std::to_string(s.num) +
             (s.endpoint ? "" : ", endpoint=False") + dtype + ")";
    case Gen::eye:
      return "eye(" + std::to_string(s.shape[0]) + ", " + std::to_string(s.shape[1]) + ", k=" + std::to_string(s.num) + dtype + ")";
    case Gen::uniform:
      return "uniform(" + scalar_text(s.a) + ", " + scalar_text(s.b) + size + seed + dtype + ")";
    case Gen::normal:
      return "normal(" + scalar_text(s.a) + ", " + scalar_text(s.b) + size + seed + dtype + ")";
    case Gen::integers:
      return "integers(" + scalar_text(s.a) + ", " + scalar_text(s.b) + size + seed + dtype + ")";
    case Gen::bernoulli: return "bernoulli(" + scalar_text(s.a) + size + seed + ")";
  }
  return "";
}

}  // namespace kiln
