// The expression parser (precedence climbing over an on-demand lexer) and its inverse,
// the printer. Operators and function names are looked up in the op table, so a new row
// in engine/ops.def is parseable and printable without touching this file; only the
// precedence of operator spellings, which is Python's and not the table's, lives here.
#include "parser.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "error.hpp"
#include "generate.hpp"
#include "linalg.hpp"

namespace kiln {
namespace {

// Binding strength of what a subexpression is written as; larger binds tighter.
constexpr int kCompareLevel = 1, kUnaryLevel = 8, kPowerLevel = 9, kAtomLevel = 10;

constexpr std::pair<std::string_view, int> kBinaryLevels[] = {
    {"<", 1}, {"<=", 1}, {">", 1}, {">=", 1}, {"==", 1}, {"!=", 1}, {"|", 2}, {"^", 3},
    {"&", 4}, {"<<", 5}, {">>", 5}, {"+", 6}, {"-", 6},  {"*", 7}, {"/", 7},  {"//", 7}, {"%", 7},  {"@", 7},
    {"**", kPowerLevel}};
constexpr std::string_view kPrefixOps = "-+~";

int binary_level(std::string_view symbol) {
  for (auto [spelling, level] : kBinaryLevels)
    if (spelling == symbol) return level;
  return 0;
}

// NumPy's other names for ops the table lists once.
constexpr std::pair<std::string_view, std::string_view> kAliases[] = {
    {"absolute", "abs"},  {"mod", "remainder"}, {"true_divide", "divide"}, {"pow", "power"},
    {"asin", "arcsin"},   {"acos", "arccos"},   {"atan", "arctan"},        {"atan2", "arctan2"},
    {"asinh", "arcsinh"}, {"acosh", "arccosh"}, {"atanh", "arctanh"},      {"radians", "deg2rad"},
    {"degrees", "rad2deg"}, {"around", "round"}};

// Unary and binary minus share a spelling; arity tells them apart.
std::optional<Op> find_operator(std::string_view symbol, int arity) {
  for (int i = 0; i < kNumOps; ++i)
    if (kOpInfo[i].arity == arity && symbol == kOpInfo[i].symbol) return static_cast<Op>(i);
  return std::nullopt;
}

std::optional<Reduction> find_reduction(std::string_view name) {
  for (int i = 0; i < kNumReductions; ++i)
    if (name == kReductionInfo[i].name) return static_cast<Reduction>(i);
  return std::nullopt;
}

std::optional<Linalg> find_linalg(std::string_view name) {
  for (int i = 0; i < kNumLinalg; ++i)
    if (name == kLinalgInfo[i].name) return static_cast<Linalg>(i);
  return std::nullopt;
}

std::optional<Op> find_function(std::string_view name) {
  for (auto [alias, canonical] : kAliases)
    if (name == alias) name = canonical;
  for (int i = 0; i < kNumOps; ++i)
    if (name == kOpInfo[i].name) return static_cast<Op>(i);
  return std::nullopt;
}

// Generator functions (engine/generate.hpp) and their parameters, in NumPy's order and
// with NumPy's names (random ones as numpy.random.Generator's methods, plus seed=).
struct GenSignature {
  std::string_view name;
  std::string_view params[5];
  int required;  // leading parameters that must be given
};
constexpr GenSignature kGenSignatures[] = {
    {"zeros", {"shape", "dtype"}, 1},
    {"ones", {"shape", "dtype"}, 1},
    {"full", {"shape", "fill_value", "dtype"}, 2},
    {"zeros_like", {"a", "dtype"}, 1},
    {"ones_like", {"a", "dtype"}, 1},
    {"full_like", {"a", "fill_value", "dtype"}, 2},
    {"arange", {"start", "stop", "step", "dtype"}, 1},
    {"linspace", {"start", "stop", "num", "endpoint", "dtype"}, 2},
    {"eye", {"N", "M", "k", "dtype"}, 1},
    {"identity", {"n", "dtype"}, 1},
    {"random", {"size", "seed", "dtype"}, 0},
    {"uniform", {"low", "high", "size", "seed", "dtype"}, 0},
    {"standard_normal", {"size", "seed", "dtype"}, 0},
    {"normal", {"loc", "scale", "size", "seed", "dtype"}, 0},
    {"integers", {"low", "high", "size", "seed", "dtype"}, 1},
    {"bernoulli", {"p", "size", "seed"}, 1},
};

const GenSignature* find_generator(std::string_view name) {
  for (const GenSignature& g : kGenSignatures)
    if (g.name == name) return &g;
  return nullptr;
}

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
constexpr bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }
constexpr bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Token text as a message shows it: unprintable bytes as \xNN, long tokens cut short.
std::string quoted(std::string_view text) {
  constexpr size_t kShown = 40;
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < kShown; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out + (text.size() > kShown ? "...'" : "'");
}

[[noreturn]] void parse_error(size_t pos, const std::string& what) {
  throw Error(Status::ParseError, "parse error at position " + std::to_string(pos) + ": " + what,
              static_cast<long>(pos));
}

enum class Tok : uint8_t { End, Int, Float, Name, Punct, String };

struct Token {
  Tok kind = Tok::End;
  size_t pos = 0, end = 0;
  std::string_view text;
};

// Scans a number starting at `at` (a digit, or '.' then a digit) and returns its end.
size_t scan_number(std::string_view text, size_t at, Tok& kind) {
  size_t i = at;
  auto digits = [&] {
    size_t start = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    return i > start;
  };
  kind = Tok::Int;
  digits();
  if (i < text.size() && text[i] == '.') {
    ++i;
    digits();
    kind = Tok::Float;
  }
  bool well_formed = true;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    well_formed = digits();
    kind = Tok::Float;
  }
  // "1x", "1.2.3", "1e": Python refuses a number run into letters or another point.
  if (!well_formed || (i < text.size() && (is_name_char(text[i]) || text[i] == '.'))) {
    while (i < text.size() && (is_name_char(text[i]) || text[i] == '.')) ++i;
    parse_error(at, "malformed number " + quoted(text.substr(at, i - at)));
  }
  return i;
}

// The token starting at or after `at`. Lexing on demand lets the parser look two tokens
// ahead without holding a token list as long as the text.
Token lex(std::string_view text, size_t at) {
  while (at < text.size() && is_space(text[at])) ++at;
  Token t;
  t.pos = t.end = at;
  if (at == text.size()) return t;
  char c = text[at];
  size_t end = at + 1;
  if (is_name_start(c)) {
    while (end < text.size() && is_name_char(text[end])) ++end;
    std::string_view word = text.substr(at, end - at);
    t.kind = (word == "inf" || word == "nan") ? Tok::Float : Tok::Name;
  } else if (is_digit(c) || (c == '.' && end < text.size() && is_digit(text[end]))) {
    end = scan_number(text, at, t.kind);
  } else if (c == '\'' || c == '"') {  // 'fro', "reduced": keyword values of linalg functions
    while (end < text.size() && text[end] != c && is_name_char(text[end])) ++end;
    if (end == text.size() || text[end] != c) parse_error(at, "unterminated or unsupported string (letters, digits and _ only)");
    t.kind = Tok::String;
    t.end = end + 1;
    t.text = text.substr(at + 1, end - at - 1);
    return t;
  } else {
    static constexpr std::string_view kTwoChar[] = {"**", "//", "<=", ">=", "==", "!=", "<<", ">>"};
    t.kind = Tok::Punct;
    bool two = false;
    for (std::string_view p : kTwoChar) two = two || text.substr(at, 2) == p;
    if (two) end = at + 2;
    else if (!std::strchr("+-*/%&|^~<>(),=;@[]", c) || c == '\0')
      parse_error(at, "unexpected character " + quoted(text.substr(at, 1)));
  }
  t.end = end;
  t.text = text.substr(at, end - at);
  return t;
}

// Python reads 1e999 as inf and 1e-999 as 0.0; from_chars reports both as out of range and
// leaves the value alone, so the decimal exponent of the first nonzero digit decides.
double out_of_range_float(std::string_view text) {
  size_t e = text.find_first_of("eE");
  std::string_view mantissa = text.substr(0, e);
  long long exponent = 0;
  if (e != std::string_view::npos) {
    size_t i = e + 1;
    bool negative = text[i] == '-';
    if (text[i] == '+' || text[i] == '-') ++i;
    for (; i < text.size(); ++i) exponent = std::min(exponent * 10 + (text[i] - '0'), 1000000000LL);
    if (negative) exponent = -exponent;
  }
  auto before_point = static_cast<long long>(std::min(mantissa.find('.'), mantissa.size()));
  auto first_nonzero = static_cast<long long>(mantissa.find_first_of("123456789"));
  long long magnitude = exponent + (first_nonzero < before_point ? before_point - first_nonzero - 1
                                                            : before_point - first_nonzero);
  return magnitude > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

double float_value(const Token& t) {
  if (t.text == "inf") return std::numeric_limits<double>::infinity();
  if (t.text == "nan") return std::numeric_limits<double>::quiet_NaN();
  double v = 0.0;
  // from_chars, unlike strtod, ignores the C locale a host program may have changed.
  auto [ptr, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
  KILN_ASSERT(ptr == t.text.data() + t.text.size());  // the lexer checked the syntax
  return ec == std::errc::result_out_of_range ? out_of_range_float(t.text) : v;
}

// An integer literal's magnitude may be 2**63 only when a minus sign folds into it.
int64_t int_value(const Token& t, bool negated) {
  uint64_t magnitude = 0;
  auto [ptr, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), magnitude);
  uint64_t limit = uint64_t{std::numeric_limits<int64_t>::max()} + (negated ? 1 : 0);
  if (ec != std::errc() || magnitude > limit) parse_error(t.pos, "integer literal out of range " + quoted(t.text));
  return negated ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
}

class Parser {
 public:
  Parser(std::string_view text, Graph& g) : text_(text), g_(g), tok_(lex(text, 0)) {}

  // Statements separated by ';' (a trailing one is allowed): `name = expression`, or an
  // expression alone. A name assigned is, in later statements, that value.
  std::vector<Statement> parse_all() {
    std::vector<Statement> program;
    while (tok_.kind != Tok::End) {
      Statement st;
      st.pos = static_cast<int>(tok_.pos);
      if (tok_.kind == Tok::Name && lex(text_, tok_.end).text == ",") {
        parse_unpacking(program);
        continue;
      }
      if (tok_.kind == Tok::Name && lex(text_, tok_.end).text == "=") {
        st.name = std::string(tok_.text);
        advance();
        advance();  // '='
      }
      st.root = parse_binary(kCompareLevel);
      if (!st.name.empty()) locals_[st.name] = st.root;
      program.push_back(std::move(st));
      if (at_punct(";")) advance();
      else if (tok_.kind != Tok::End) unexpected(tok_, program.back().name.empty() ? "" : "; expected ';'");
    }
    if (program.empty()) unexpected(tok_);
    return program;
  }

 private:
  // `q, r = qr(a)`: each name is one result of a several-result linalg call.
  void parse_unpacking(std::vector<Statement>& program) {
    std::vector<Token> names;
    for (;;) {
      if (tok_.kind != Tok::Name) unexpected(tok_, "; expected a name");
      names.push_back(tok_);
      advance();
      if (at_punct("=")) break;
      if (!at_punct(",")) unexpected(tok_, "; expected ',' or '='");
      advance();
    }
    advance();  // '='
    Token call = tok_;
    std::optional<Linalg> fn;
    if (call.kind == Tok::Name && lex(text_, call.end).text == "(") fn = find_linalg(call.text);
    if (!fn) parse_error(call.pos, "only a call of qr, eigh, svd or lstsq can be unpacked into several names");
    advance();
    std::vector<int> parts = parse_linalg(call, *fn, true);
    if (parts.size() != names.size())
      parse_error(names[0].pos, std::string(call.text) + " returns " + std::to_string(parts.size()) + " arrays, not " +
                                    std::to_string(names.size()));
    for (size_t i = 0; i < names.size(); ++i) {
      Statement st;
      st.pos = static_cast<int>(names[i].pos);
      st.name = std::string(names[i].text);
      st.root = parts[i];
      locals_[st.name] = st.root;
      program.push_back(std::move(st));
    }
    if (at_punct(";")) advance();
    else if (tok_.kind != Tok::End) unexpected(tok_, "; expected ';'");
  }

  // matmul(a, b), solve(a, b), qr(a, mode='r'), norm(x, ord=2, axis=(0, 1)), ... with
  // numpy.linalg's names, positional order and keywords. A several-result function is
  // unpacked (`q, r = qr(a)`, when `unpacking`) or subscripted (`qr(a)[1]`). Returns the
  // node of each result asked for.
  std::vector<int> parse_linalg(const Token& name, Linalg fn, bool unpacking) {
    const int pos = static_cast<int>(name.pos);
    const LinalgInfo& info = linalg_info(fn);
    advance();  // '('
    struct Value {
      enum Kind { Number, String, Flag, None, Axes } kind = None;
      double number = 0;
      std::string_view text;
      bool flag = false;
      std::vector<int> axes;
      size_t pos = 0;
    };
    auto parse_value = [&] {
      Value v;
      v.pos = tok_.pos;
      if (tok_.kind == Tok::String) {
        v.kind = Value::String, v.text = tok_.text;
      } else if (tok_.kind == Tok::Name && (tok_.text == "True" || tok_.text == "False" || tok_.text == "None")) {
        v.kind = tok_.text == "None" ? Value::None : Value::Flag;
        v.flag = tok_.text == "True";
      } else if (at_punct("(")) {
        advance();
        v.kind = Value::Axes;
        while (!at_punct(")")) {
          v.axes.push_back(static_cast<int>(parse_int("an axis")));
          if (at_punct(",")) advance();
          else if (!at_punct(")")) unexpected(tok_, "; expected ',' or ')'");
        }
      } else {
        bool negative = at_punct("-");
        if (negative) advance();
        if (!at_number()) unexpected(tok_, "; expected a number, a string, True, False or None");
        v.kind = Value::Number;
        v.number = tok_.kind == Tok::Int ? static_cast<double>(int_value(tok_, negative)) : float_value(tok_);
        if (negative && tok_.kind == Tok::Float) v.number = -v.number;
      }
      advance();
      return v;
    };
    static constexpr std::string_view kKeywords[][3] = {
        {}, {}, {}, {}, {}, {"mode"}, {"UPLO"}, {"UPLO"}, {"full_matrices", "compute_uv"}, {"rcond"}, {"ord", "axis", "keepdims"}};
    static_assert(std::size(kKeywords) == kNumLinalg);
    std::vector<int> operands;
    Value given[3];
    bool seen[3] = {false, false, false};
    int positional = 0;
    while (!at_punct(")")) {
      if (positional > 0 || !operands.empty() || seen[0] || seen[1] || seen[2]) {
        if (!at_punct(",")) unexpected(tok_, "; expected ',' or ')'");
        advance();
        if (at_punct(")")) break;
      }
      int slot = -1;
      if (tok_.kind == Tok::Name && lex(text_, tok_.end).text == "=") {
        for (int k = 0; k < 3; ++k)
          if (!kKeywords[int(fn)][k].empty() && kKeywords[int(fn)][k] == tok_.text) slot = k;
        if (slot < 0) parse_error(tok_.pos, std::string(info.name) + " takes no argument " + quoted(tok_.text));
        advance();
        advance();  // '='
      } else if (static_cast<int>(operands.size()) < info.operands) {
        operands.push_back(parse_binary(kCompareLevel));
        continue;
      } else {
        slot = positional++;
        if (slot >= 3 || kKeywords[int(fn)][slot].empty()) {
          auto most = info.operands + std::count_if(std::begin(kKeywords[int(fn)]), std::end(kKeywords[int(fn)]),
                                                    [](std::string_view k) { return !k.empty(); });
          parse_error(tok_.pos, std::string(info.name) + " takes at most " + std::to_string(most) + " argument" +
                                    (most == 1 ? "" : "s"));
        }
      }
      if (seen[slot]) parse_error(tok_.pos, std::string(info.name) + " got " + std::string(kKeywords[int(fn)][slot]) + " twice");
      seen[slot] = true;
      given[slot] = parse_value();
    }
    advance();  // ')'
    if (static_cast<int>(operands.size()) != info.operands)
      throw Error(Status::BadArgument, std::string(info.name) + " takes " + std::to_string(info.operands) + " array" +
                                           (info.operands == 1 ? "" : "s") + ", got " + std::to_string(operands.size()) +
                                           " at position " + std::to_string(pos), pos);
    auto want = [&](int slot, Value::Kind kind, const char* what) -> const Value* {
      if (!seen[slot] || given[slot].kind == Value::None) return nullptr;
      if (given[slot].kind != kind)
        parse_error(given[slot].pos, std::string(info.name) + ": " + std::string(kKeywords[int(fn)][slot]) + " must be " + what);
      return &given[slot];
    };
    LinalgSpec spec;
    spec.fn = fn;
    try {
      switch (fn) {
        case Linalg::qr: {
          const Value* m = want(0, Value::String, "a string");
          spec = qr_spec(m ? m->text : "reduced");
          break;
        }
        case Linalg::eigh: case Linalg::eigvalsh: {
          const Value* u = want(0, Value::String, "'L' or 'U'");
          spec = eigh_spec(fn, u ? u->text : "L");
          break;
        }
        case Linalg::svd: {
          const Value* f = want(0, Value::Flag, "True or False");
          const Value* c = want(1, Value::Flag, "True or False");
          spec = svd_spec(f ? f->flag : true, c ? c->flag : true);
          break;
        }
        case Linalg::lstsq: {
          const Value* r = want(0, Value::Number, "a number or None");
          spec = lstsq_spec(r ? r->number : -1.0);
          break;
        }
        case Linalg::norm: {
          std::vector<int> axes;
          if (seen[1] && given[1].kind == Value::Number) {
            // Checked before the cast: a double with no int value (2.5, inf, nan, 1e300) has
            // no defined conversion.
            const double axis = given[1].number;
            if (axis != std::floor(axis) || std::isinf(axis)) parse_error(given[1].pos, "norm: axis must be an integer");
            if (std::fabs(axis) > 1e9) parse_error(given[1].pos, "norm: axis is out of range");
            axes = {static_cast<int>(axis)};
          } else if (const Value* a = want(1, Value::Axes, "an integer, a pair of integers or None")) {
            axes = a->axes;
          }
          const Value* k = want(2, Value::Flag, "True or False");
          bool number = seen[0] && given[0].kind == Value::Number;
          std::string_view ord_name = !seen[0] || number || given[0].kind == Value::None ? "" : given[0].text;
          if (seen[0] && !number && given[0].kind != Value::None && given[0].kind != Value::String)
            parse_error(given[0].pos, "norm: ord must be a number, inf, 'fro', 'nuc' or None");
          spec = norm_spec(ord_name, number, number ? given[0].number : 0.0, axes, k && k->flag);
          break;
        }
        default: break;
      }
    } catch (const Error& e) {
      if (e.offset() >= 0) throw;
      throw Error(e.status(), std::string(e.what()) + " (at position " + std::to_string(pos) + ")", pos);
    }
    const int results = linalg_results(spec);
    std::vector<int> parts;
    if (at_punct("[")) {
      advance();
      size_t at = tok_.pos;
      int64_t part = parse_int("a result index");
      if (part < 0) part += results;
      if (part < 0 || part >= results)
        parse_error(at, std::string(info.name) + " returns " + std::to_string(results) + " array" + (results == 1 ? "" : "s") +
                            "; index " + std::to_string(part) + " is out of range");
      if (!at_punct("]")) unexpected(tok_, "; expected ']'");
      advance();
      spec.part = static_cast<int8_t>(part);
      return {g_.linalg(spec, operands.data(), pos)};
    }
    if (results > 1 && !unpacking)
      parse_error(name.pos, std::string(info.name) + " returns " + std::to_string(results) +
                                " arrays: unpack them (`x, y = " + std::string(info.name) + "(...)`) or take one (" +
                                std::string(info.name) + "(...)[0])");
    for (int k = 0; k < results; ++k) {
      spec.part = static_cast<int8_t>(k);
      parts.push_back(g_.linalg(spec, operands.data(), pos));
    }
    return parts;
  }

  void advance() { tok_ = lex(text_, tok_.end); }
  bool at_punct(std::string_view p) const { return tok_.kind == Tok::Punct && tok_.text == p; }
  bool at_number() const { return tok_.kind == Tok::Int || tok_.kind == Tok::Float; }

  [[noreturn]] void unexpected(const Token& t, const char* hint = "") {
    if (t.kind == Tok::End) parse_error(t.pos, std::string("unexpected end of expression") + hint);
    parse_error(t.pos, "unexpected " + quoted(t.text) + hint);
  }

  // Every way of nesting (parentheses, calls, prefixes, exponents) recurses through
  // parse_unary, so counting there bounds the stack.
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxExpressionDepth)
        parse_error(parser.tok_.pos, "expression nested too deeply (more than " +
                                         std::to_string(kMaxExpressionDepth) + " levels)");
    }
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };

  int make_op(const Token& op, std::initializer_list<int> args) {
    if (op.text == "@") return g_.linalg(LinalgSpec{}, args.begin(), static_cast<int>(op.pos));
    std::optional<Op> found = find_operator(op.text, static_cast<int>(args.size()));
    if (!found) unexpected(op);
    return g_.op(*found, args, static_cast<int>(op.pos));
  }

  // Binary operators at `min_level` or tighter, left-associative; comparisons never chain.
  int parse_binary(int min_level) {
    int lhs = parse_unary();
    bool compared = false;
    for (;;) {
      int level = tok_.kind == Tok::Punct ? binary_level(tok_.text) : 0;
      if (level == 0 || level < min_level || level == kPowerLevel) return lhs;
      Token op = tok_;
      if (level == kCompareLevel) {
        if (compared) parse_error(op.pos, "chained comparisons are not supported; use (a < b) & (b < c)");
        compared = true;
      }
      advance();
      int rhs = parse_binary(level + 1);
      lhs = make_op(op, {lhs, rhs});
    }
  }

  int parse_unary() {
    DepthGuard guard(*this);
    if (tok_.kind != Tok::Punct || tok_.text.size() != 1 || kPrefixOps.find(tok_.text[0]) == kPrefixOps.npos)
      return parse_power();
    Token op = tok_;
    advance();
    // "-2" is a literal, but "-2 ** x" is -(2 ** x).
    if (op.text == "-" && at_number() && lex(text_, tok_.end).text != "**") {
      Token number = tok_;
      advance();
      int pos = static_cast<int>(op.pos);
      if (number.kind == Tok::Int) return g_.literal(Scalar::of_int(int_value(number, true)), pos);
      return g_.literal(Scalar::of_float(-float_value(number)), pos);
    }
    int arg = parse_unary();
    return op.text == "+" ? arg : make_op(op, {arg});
  }

  int parse_power() {
    int base = parse_primary();
    if (!at_punct("**")) return base;
    Token op = tok_;
    advance();
    int exponent = parse_unary();  // right-associative, and may carry a sign: 2 ** -1
    // Python's `x ** 2`, `x ** 0.5`, `x ** -1` on an array run NumPy's square, sqrt and
    // reciprocal (its fast scalar power), not power(): same results as pow but for sqrt's
    // -0.0 and -inf, and faster. power(x, 0.5) stays power, as np.power does.
    const Node& e = g_.node(exponent);
    if (g_.node(base).kind != NodeKind::Literal && e.kind == NodeKind::Literal && e.value.kind != Kind::Bool) {
      double v = e.value.as_double();
      int pos = static_cast<int>(op.pos);
      if (v == 2.0) return g_.op(Op::square, {base}, pos);
      if (v == 0.5) return g_.op(Op::sqrt, {base}, pos);
      if (v == -1.0 && e.value.kind == Kind::Float) return g_.op(Op::reciprocal, {base}, pos);
    }
    return make_op(op, {base, exponent});
  }

  int parse_primary() {
    Token t = tok_;
    int pos = static_cast<int>(t.pos);
    if (t.kind == Tok::Int || t.kind == Tok::Float) {
      advance();
      return t.kind == Tok::Int ? g_.literal(Scalar::of_int(int_value(t, false)), pos)
                                : g_.literal(Scalar::of_float(float_value(t)), pos);
    }
    if (t.kind == Tok::Name) {
      advance();
      if (t.text == "True" || t.text == "False") return g_.literal(Scalar::of_bool(t.text == "True"), pos);
      if (at_punct("(")) return parse_call(t);
      if (auto local = locals_.find(std::string(t.text)); local != locals_.end()) return local->second;
      return g_.input(t.text, pos);
    }
    if (at_punct("(")) {
      advance();
      int inner = parse_binary(kCompareLevel);
      if (!at_punct(")")) unexpected(tok_, "; expected ')'");
      advance();
      return inner;
    }
    unexpected(t);
  }

  // An integer literal, optionally negative.
  int64_t parse_int(const char* what) {
    bool negative = at_punct("-");
    if (negative) advance();
    if (tok_.kind != Tok::Int) unexpected(tok_, (std::string("; expected an integer for ") + what).c_str());
    int64_t v = int_value(tok_, negative);
    advance();
    return v;
  }

  void parse_axis(ReduceSpec& spec) {
    if (tok_.kind == Tok::Name && tok_.text == "None") {
      advance();
      spec.all_axes = true;
      return;
    }
    spec.all_axes = false;
    spec.axes = 0;
    auto one = [&] {
      size_t at = tok_.pos;
      int64_t axis = parse_int("axis");
      if (axis < ReduceSpec::kMinAxis || axis > ReduceSpec::kMaxAxis)
        parse_error(at, "axis " + std::to_string(axis) + " is out of range (arrays have at most 32 dimensions)");
      uint64_t bit = uint64_t{1} << ReduceSpec::bit_of(static_cast<int>(axis));
      if (spec.axes & bit) parse_error(at, "axis " + std::to_string(axis) + " is repeated");
      spec.axes |= bit;
    };
    if (!at_punct("(")) return one();
    advance();
    while (!at_punct(")")) {
      one();
      if (at_punct(",")) advance();
      else if (!at_punct(")")) unexpected(tok_, "; expected ',' or ')'");
    }
    advance();
  }

  // sum(x), sum(x, 1), sum(x, axis=(0, 1), keepdims=True), var(x, ddof=1), ...
  int parse_reduction(const Token& name, Reduction r) {
    int pos = static_cast<int>(name.pos);
    advance();  // '('
    ReduceSpec spec;
    spec.reduction = r;
    int operand = -1, positional = 0;
    bool seen_axis = false, seen_keepdims = false, seen_ddof = false, keywords = false;
    while (!at_punct(")")) {
      if (operand >= 0 || positional > 0) {
        if (!at_punct(",")) unexpected(tok_, "; expected ',' or ')'");
        advance();
        if (at_punct(")")) break;
      }
      if (tok_.kind == Tok::Name && lex(text_, tok_.end).text == "=") {
        Token key = tok_;
        advance();
        advance();  // '='
        bool* seen = key.text == "axis" ? &seen_axis : key.text == "keepdims" ? &seen_keepdims
                   : (key.text == "ddof" && reduction_info(r).ddof) ? &seen_ddof : nullptr;
        if (!seen)
          parse_error(key.pos, std::string(name.text) + " has no keyword argument " + quoted(key.text) +
                                   (reduction_info(r).ddof ? " (it takes axis, keepdims, ddof)" : " (it takes axis, keepdims)"));
        if (*seen) parse_error(key.pos, "keyword argument " + quoted(key.text) + " is given twice");
        *seen = true;
        keywords = true;
        if (key.text == "axis") {
          parse_axis(spec);
        } else if (key.text == "keepdims") {
          if (tok_.kind != Tok::Name || (tok_.text != "True" && tok_.text != "False"))
            unexpected(tok_, "; keepdims takes True or False");
          spec.keepdims = tok_.text == "True";
          advance();
        } else {
          size_t at = tok_.pos;
          int64_t ddof = parse_int("ddof");
          if (ddof < INT32_MIN || ddof > INT32_MAX) parse_error(at, "ddof " + std::to_string(ddof) + " is out of range");
          spec.ddof = static_cast<int32_t>(ddof);
        }
        ++positional;
        continue;
      }
      if (keywords) parse_error(tok_.pos, "positional argument after keyword arguments");
      if (operand < 0) {
        operand = parse_binary(kCompareLevel);
      } else if (positional == 0) {
        parse_axis(spec);  // sum(x, 1): NumPy's second positional argument is the axis
        seen_axis = true;
        ++positional;
      } else {
        parse_error(tok_.pos, std::string(name.text) + " takes at most 2 positional arguments (the array and axis)");
      }
    }
    advance();  // ')'
    if (operand < 0)
      throw Error(Status::BadArgument, std::string(name.text) + " takes an array argument, got none at position " +
                                           std::to_string(pos), pos);
    return g_.reduce(spec, operand, pos);
  }

  // One argument of a generator call: a shape tuple, a dtype name, True/False/None, or an
  // expression (a literal for the numeric parameters; any array for *_like's `a`).
  struct GenArg {
    bool given = false;
    size_t pos = 0;
    enum Kind { Expression, Tuple, DTypeName, Flag, None } kind = Expression;
    int node = -1;
    std::vector<int64_t> tuple;  // checked against kMaxDims where it becomes a shape
    DType dtype = DType::Float64;
    bool flag = false;
  };

  GenArg parse_gen_arg() {
    GenArg a;
    a.given = true;
    a.pos = tok_.pos;
    Token next = lex(text_, tok_.end);
    if (tok_.kind == Tok::Name && (next.kind != Tok::Punct || next.text != "(")) {
      DType d;
      if (tok_.text == "None" || tok_.text == "True" || tok_.text == "False") {
        a.kind = tok_.text == "None" ? GenArg::None : GenArg::Flag;
        a.flag = tok_.text == "True";
        advance();
        return a;
      }
      if (dtype_from_name(tok_.text, d)) {
        a.kind = GenArg::DTypeName;
        a.dtype = d;
        advance();
        return a;
      }
    }
    // (3, 4), (5,) and () are shapes; (3) is the number 3.
    if (at_punct("(") && (next.kind == Tok::Int || (next.kind == Tok::Punct && (next.text == ")" || next.text == "-")))) {
      advance();
      a.kind = GenArg::Tuple;
      bool comma = false;
      while (!at_punct(")")) {
        a.tuple.push_back(parse_int("a shape"));
        if (at_punct(",")) {
          comma = true;
          advance();
        } else if (!at_punct(")")) {
          unexpected(tok_, "; expected ',' or ')'");
        }
      }
      advance();
      if (a.tuple.size() == 1 && !comma) {  // a parenthesised integer
        a.kind = GenArg::Expression;
        a.node = g_.literal(Scalar::of_int(a.tuple[0]), static_cast<int>(a.pos));
      }
      return a;
    }
    a.node = parse_binary(kCompareLevel);
    return a;
  }

  // A call's arguments, from after the name up to its ')', in Python's way: positional ones,
  // then keywords (`shape=` is `size=`), a trailing comma allowed. parse_one(slot) reads the
  // argument for params[slot].
  template <class ParseOne>
  void parse_arguments(const std::string& fn, std::span<const std::string_view> params, ParseOne parse_one) {
    advance();  // '('
    const int nparams = static_cast<int>(params.size());
    std::vector<bool> given(params.size());
    int positional = 0;
    bool keywords = false;
    bool first = true;
    while (!at_punct(")")) {
      if (!first) {
        if (!at_punct(",")) unexpected(tok_, "; expected ',' or ')'");
        advance();
        if (at_punct(")")) break;
      }
      first = false;
      int slot;
      if (tok_.kind == Tok::Name && lex(text_, tok_.end).text == "=") {
        const Token key = tok_;
        slot = -1;
        for (int i = 0; i < nparams; ++i)
          if (params[i] == key.text || (key.text == "shape" && params[i] == "size")) slot = i;  // shape= is size=
        if (slot < 0) {
          std::string names;
          for (int i = 0; i < nparams; ++i) names += (i ? ", " : "") + std::string(params[i]);
          parse_error(key.pos, fn + " has no keyword argument " + quoted(key.text) + " (it takes " + names + ")");
        }
        if (given[slot]) parse_error(key.pos, fn + " got argument " + quoted(key.text) + " twice");
        advance();
        advance();  // '='
        keywords = true;
      } else {
        if (keywords) parse_error(tok_.pos, "positional argument after keyword arguments");
        if (positional >= nparams)
          parse_error(tok_.pos, fn + " takes at most " + std::to_string(nparams) + " arguments");
        slot = positional++;
      }
      given[slot] = true;
      parse_one(slot);
    }
  }

  // zeros((3, 4)), arange(0, 1, 0.1), uniform(size=1000, seed=7), zeros_like(x), ...
  int parse_generator(const Token& name, const GenSignature& sig) {
    const int pos = static_cast<int>(name.pos);
    const std::string fn(name.text);
    GenArg args[5];
    int nparams = 0;
    while (nparams < 5 && !sig.params[nparams].empty()) ++nparams;
    parse_arguments(fn, std::span(sig.params, nparams), [&](int slot) { args[slot] = parse_gen_arg(); });
    advance();  // ')'
    for (int i = 0; i < sig.required; ++i)
      if (!args[i].given)
        throw Error(Status::BadArgument, fn + " at position " + std::to_string(pos) + " needs its argument " +
                                             quoted(sig.params[i]), pos);
    auto at = [&](const GenArg& a) { return " (at position " + std::to_string(a.pos) + ")"; };
    auto slot_of = [&](std::string_view param) {
      for (int i = 0; i < nparams; ++i)
        if (sig.params[i] == param) return &args[i];
      KILN_ASSERT(false);
      return &args[0];
    };
    auto number = [&](std::string_view param, Scalar fallback) -> Scalar {
      const GenArg& a = *slot_of(param);
      if (!a.given) return fallback;
      if (a.kind == GenArg::Flag) return Scalar::of_bool(a.flag);
      if (a.kind != GenArg::Expression || g_.node(a.node).kind != NodeKind::Literal)
        throw Error(Status::BadArgument, fn + ": " + std::string(param) + " must be a number" + at(a), pos);
      return g_.node(a.node).value;
    };
    auto integer = [&](std::string_view param, int64_t fallback) -> int64_t {
      Scalar v = number(param, Scalar::of_int(fallback));
      if (v.kind != Kind::Int)
        throw Error(Status::BadArgument, fn + ": " + std::string(param) + " must be an integer" + at(*slot_of(param)), pos);
      return v.i;
    };
    auto real = [&](std::string_view param, double fallback) { return number(param, Scalar::of_float(fallback)).as_double(); };
    auto dtype = [&]() -> std::optional<DType> {
      const GenArg& a = *slot_of("dtype");
      if (!a.given || a.kind == GenArg::None) return std::nullopt;
      if (a.kind != GenArg::DTypeName)
        throw Error(Status::BadArgument, fn + ": dtype must be one of bool, int32, int64, float32, float64" + at(a), pos);
      return a.dtype;
    };
    auto shape = [&](std::string_view param) -> std::optional<Shape> {
      const GenArg& a = *slot_of(param);
      if (!a.given || a.kind == GenArg::None) return std::nullopt;
      if (a.kind == GenArg::Tuple) {
        if (a.tuple.size() > static_cast<size_t>(kMaxDims))
          throw Error(Status::BadArgument, fn + ": a shape of " + std::to_string(a.tuple.size()) + " dimensions (at most " +
                                               std::to_string(kMaxDims) + ")");
        return Shape(a.tuple);
      }
      return Shape{integer(param, 0)};
    };
    auto seed = [&]() -> uint64_t {
      if (!slot_of("seed")->given)
        throw Error(Status::BadArgument, fn + " at position " + std::to_string(pos) +
                                             " needs seed= (random numbers in kiln are reproducible from their seed)", pos);
      int64_t v = integer("seed", 0);
      if (v < 0) throw Error(Status::BadArgument, fn + ": seed must be non-negative" + at(*slot_of("seed")), pos);
      return static_cast<uint64_t>(v);
    };
    auto flag = [&](std::string_view param, bool fallback) {
      const GenArg& a = *slot_of(param);
      if (!a.given) return fallback;
      if (a.kind != GenArg::Flag) throw Error(Status::BadArgument, fn + ": " + std::string(param) + " takes True or False" + at(a), pos);
      return a.flag;
    };
    auto made = [&](const GenSpec& spec, int like = -1) { return g_.generate(spec, like, pos); };
    try {
      if (fn == "zeros" || fn == "ones" || fn == "full") {
        Shape sh = *shape("shape");
        Scalar v = fn == "full" ? number("fill_value", {}) : Scalar::of_float(fn == "ones" ? 1.0 : 0.0);
        return made(full_spec(sh, v, fn == "full" ? dtype() : dtype().value_or(DType::Float64), sig.name.data()));
      }
      if (fn == "zeros_like" || fn == "ones_like" || fn == "full_like") {
        const GenArg& a = *slot_of("a");
        if (a.kind != GenArg::Expression) throw Error(Status::BadArgument, fn + ": a must be an array" + at(a), pos);
        Scalar v = fn == "full_like" ? number("fill_value", {}) : Scalar::of_int(fn == "ones_like" ? 1 : 0);
        return made(full_like_spec(v, dtype()), a.node);
      }
      if (fn == "arange") {
        // arange(stop), arange(start, stop[, step]), as NumPy.
        bool one = !slot_of("stop")->given;
        Scalar start = one ? Scalar::of_int(0) : number("start", {});
        Scalar stop = one ? number("start", {}) : number("stop", {});
        return made(arange_spec(start, stop, number("step", Scalar::of_int(1)), dtype()));
      }
      if (fn == "linspace")
        return made(linspace_spec(real("start", 0), real("stop", 0), integer("num", 50), flag("endpoint", true), dtype()));
      if (fn == "eye" || fn == "identity") {
        std::optional<int64_t> cols;
        if (fn == "eye" && slot_of("M")->given && slot_of("M")->kind != GenArg::None) cols = integer("M", 0);
        return made(eye_spec(integer(fn == "eye" ? "N" : "n", 0), cols, fn == "eye" ? integer("k", 0) : 0, dtype()));
      }
      if (fn == "random") return made(uniform_spec(seed(), shape("size"), 0.0, 1.0, dtype()));
      if (fn == "uniform") return made(uniform_spec(seed(), shape("size"), real("low", 0.0), real("high", 1.0), dtype()));
      if (fn == "standard_normal") return made(normal_spec(seed(), shape("size"), 0.0, 1.0, dtype()));
      if (fn == "normal") return made(normal_spec(seed(), shape("size"), real("loc", 0.0), real("scale", 1.0), dtype()));
      if (fn == "integers") {
        // integers(high) draws from [0, high), as NumPy.
        bool one = !slot_of("high")->given || slot_of("high")->kind == GenArg::None;
        int64_t low = one ? 0 : integer("low", 0), high = one ? integer("low", 0) : integer("high", 0);
        return made(integers_spec(seed(), shape("size"), low, high, dtype()));
      }
      return made(bernoulli_spec(seed(), shape("size"), real("p", 0.5)));
    } catch (const Error& e) {
      if (e.offset() >= 0) throw;
      throw Error(e.status(), std::string(e.what()) + " (at position " + std::to_string(pos) + ")", pos);
    }
  }

  int parse_call(const Token& name) {
    int pos = static_cast<int>(name.pos);
    if (std::optional<Reduction> r = find_reduction(name.text)) return parse_reduction(name, *r);
    if (const GenSignature* sig = find_generator(name.text)) return parse_generator(name, *sig);
    if (std::optional<Linalg> fn = find_linalg(name.text)) return parse_linalg(name, *fn, false)[0];
    if (name.text == "isclose" || name.text == "allclose") return parse_isclose(name);
    std::optional<Op> op = find_function(name.text);
    DType cast_to{};
    bool is_cast = !op && dtype_from_name(name.text, cast_to);
    if (!op && !is_cast)
      throw Error(Status::UnknownName, "unknown function " + quoted(name.text) + " at position " + std::to_string(pos),
                  pos);
    advance();  // '('
    std::vector<int> args;
    std::vector<size_t> arg_pos;
    while (!at_punct(")")) {
      if (!args.empty()) {
        if (!at_punct(",")) unexpected(tok_, "; expected ',' or ')'");
        advance();
      }
      arg_pos.push_back(tok_.pos);
      if (tok_.kind == Tok::Name && lex(text_, tok_.end).text == "=") {
        if (op != Op::round || tok_.text != "decimals" || args.size() != 1)
          parse_error(tok_.pos, "keyword arguments are not supported (" + quoted(tok_.text) + ")" +
                                    (op == Op::round ? "; round takes decimals=" : ""));
        advance();
        advance();  // '='
        arg_pos.back() = tok_.pos;
      }
      args.push_back(parse_binary(kCompareLevel));
    }
    advance();  // ')'
    if (op == Op::round) {  // NumPy's round(a, decimals=0); an array of decimals is kiln's own
      if (args.size() == 1) args.push_back(g_.literal(Scalar::of_int(0), pos));
      if (args.size() != 2)
        throw Error(Status::BadArgument, "round takes an array and decimals, got " + std::to_string(args.size()) +
                                             " arguments at position " + std::to_string(pos), pos);
      const Node& d = g_.node(args[1]);
      if (d.kind == NodeKind::Literal &&
          (d.value.kind != Kind::Int || d.value.i < INT32_MIN || d.value.i > INT32_MAX))  // NumPy's is a C int
        parse_error(arg_pos[1], "round: decimals must be an integer (of int32's range)");
    }
    int arity = is_cast ? 1 : op_info(*op).arity;
    if (static_cast<int>(args.size()) != arity)
      throw Error(Status::BadArgument, std::string(name.text) + " takes " + std::to_string(arity) + " argument" +
                                           (arity == 1 ? "" : "s") + ", got " + std::to_string(args.size()) +
                                           " at position " + std::to_string(pos),
                  pos);
    if (is_cast) return g_.cast(cast_to, args[0], pos);
    return g_.op(*op, args.data(), arity, pos);
  }

  // isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False), NumPy's test written out:
  // |a - b| <= atol + rtol * |b| where both are finite, else a == b (equal infinities),
  // with b made float first (b * 1.0: NumPy's result_type(b, 1.0)). allclose is all() of it.
  int parse_isclose(const Token& name) {
    const int pos = static_cast<int>(name.pos);
    const std::string fn(name.text);
    constexpr std::string_view kParams[] = {"a", "b", "rtol", "atol", "equal_nan"};
    int args[4] = {-1, -1, -1, -1};
    bool equal_nan = false;
    parse_arguments(fn, kParams, [&](int slot) {
      if (slot < 4) {
        args[slot] = parse_binary(kCompareLevel);
        return;
      }
      if (tok_.kind != Tok::Name || (tok_.text != "True" && tok_.text != "False"))
        unexpected(tok_, "; equal_nan takes True or False");
      equal_nan = tok_.text == "True";
      advance();
    });
    advance();  // ')'
    if (args[0] < 0 || args[1] < 0)
      throw Error(Status::BadArgument, fn + " at position " + std::to_string(pos) + " needs a and b", pos);
    const int a = args[0], b = g_.op(Op::multiply, {args[1], g_.literal(Scalar::of_float(1.0), pos)}, pos);
    const int rtol = args[2] >= 0 ? args[2] : g_.literal(Scalar::of_float(1e-05), pos);
    const int atol = args[3] >= 0 ? args[3] : g_.literal(Scalar::of_float(1e-08), pos);
    const int finite = g_.op(Op::bitwise_and, {g_.op(Op::isfinite, {a}, pos), g_.op(Op::isfinite, {b}, pos)}, pos);
    const int within = g_.op(Op::less_equal,
                             {g_.op(Op::abs, {g_.op(Op::subtract, {a, b}, pos)}, pos),
                              g_.op(Op::add, {atol, g_.op(Op::multiply, {rtol, g_.op(Op::abs, {b}, pos)}, pos)}, pos)},
                             pos);
    int close = g_.op(Op::where, {finite, within, g_.op(Op::equal, {a, b}, pos)}, pos);
    if (equal_nan) {
      const int both_nan = g_.op(Op::bitwise_and, {g_.op(Op::isnan, {a}, pos), g_.op(Op::isnan, {b}, pos)}, pos);
      close = g_.op(Op::bitwise_or, {close, both_nan}, pos);
    }
    if (fn == "isclose") return close;
    ReduceSpec all;
    all.reduction = Reduction::all;
    return g_.reduce(all, close, pos);
  }

  std::string_view text_;
  Graph& g_;
  Token tok_;
  int depth_ = 0;
  std::unordered_map<std::string, int> locals_;  // names assigned so far
};

// --- printing ---------------------------------------------------------------------

// How an op is written: as an infix or prefix operator when the parser reads its symbol
// back as that op, otherwise as a call.
int op_level(Op op) {
  const OpInfo& info = op_info(op);
  std::string_view symbol = info.symbol;
  if (info.arity == 2 && binary_level(symbol) != 0) return binary_level(symbol);
  if (info.arity == 1 && symbol.size() == 1 && kPrefixOps.find(symbol[0]) != kPrefixOps.npos) return kUnaryLevel;
  return kAtomLevel;
}

bool is_numeric_literal(const Node& n) { return n.kind == NodeKind::Literal && n.value.kind != Kind::Bool; }

// `x ** 2`, `x ** 0.5` and `x ** -1.0` read back as square, sqrt and reciprocal (see
// parse_power), so a power node with such an exponent is written as the call power(x, 2).
bool power_reads_back_as_other_op(const Graph& g, const Node& n) {
  if (n.kind != NodeKind::Op || n.op != Op::power) return false;
  const Node& base = g.node(n.args[0]);
  const Node& e = g.node(n.args[1]);
  if (base.kind == NodeKind::Literal || !is_numeric_literal(e)) return false;
  double v = e.value.as_double();
  return v == 2.0 || v == 0.5 || (v == -1.0 && e.value.kind == Kind::Float);
}

int node_op_level(const Graph& g, const Node& n) {
  return power_reads_back_as_other_op(g, n) ? kAtomLevel : op_level(n.op);
}

bool is_matmul(const Node& n) { return n.kind == NodeKind::Linalg && n.linalg.fn == Linalg::matmul; }

int node_level(const Graph& g, const Node& n) {
  if (n.kind == NodeKind::Op) return node_op_level(g, n);
  if (is_matmul(n)) return binary_level("@");
  if (n.kind == NodeKind::Linalg) return kAtomLevel;
  if (n.kind == NodeKind::Reduce || n.kind == NodeKind::Generate) return kAtomLevel;
  bool negative = is_numeric_literal(n) && (n.value.kind == Kind::Int ? n.value.i < 0 : std::signbit(n.value.f));
  return negative ? kUnaryLevel : kAtomLevel;  // "-1" binds like a unary minus
}

bool needs_parens(const Graph& g, const Node& parent, int arg, const Node& child) {
  if (parent.kind != NodeKind::Op && !is_matmul(parent)) return false;
  int level = node_level(g, parent), inner = node_level(g, child);
  if (level == kAtomLevel) return false;
  // -(1) must not fold into the literal -1 when read back; --1 is already -(-1).
  if (level == kUnaryLevel)
    return inner < kUnaryLevel || (parent.op == Op::negative && is_numeric_literal(child) && inner == kAtomLevel);
  if (level == kPowerLevel) return arg == 0 ? inner <= kPowerLevel : inner < kUnaryLevel;
  if (level == kCompareLevel) return inner <= kCompareLevel;
  return arg == 0 ? inner < level : inner <= level;
}

std::string reduce_suffix(const ReduceSpec& r) {
  std::string s;
  if (!r.all_axes) {
    const std::vector<int> axes = r.axis_list();
    s += ", axis=";
    if (axes.size() == 1) {
      s += std::to_string(axes[0]);
    } else {
      s += "(";
      for (size_t i = 0; i < axes.size(); ++i) s += (i ? ", " : "") + std::to_string(axes[i]);
      s += ")";
    }
  }
  if (r.keepdims) s += ", keepdims=True";
  if (r.ddof) s += ", ddof=" + std::to_string(r.ddof);
  return s + ")";
}

// What a node writes before its argument `arg`, or after its last when arg == nargs.
void append_piece(std::string& out, const Graph& g, const Node& n, int arg) {
  switch (n.kind) {
    case NodeKind::Input: out += g.input_names()[n.input]; return;
    case NodeKind::Literal: out += scalar_text(n.value); return;
    case NodeKind::Cast: out += arg == 0 ? std::string(dtype_name(n.dtype)) + "(" : ")"; return;
    case NodeKind::Reduce: out += arg == 0 ? std::string(reduction_info(n.reduce.reduction).name) + "(" : reduce_suffix(n.reduce); return;
    case NodeKind::Generate: {
      // *_like's text is split around its operand.
      std::string text = gen_text(n.gen, "\x01");
      size_t cut = text.find('\x01');
      if (cut == std::string::npos) out += arg == 0 ? text : "";
      else out += arg == 0 ? text.substr(0, cut) : text.substr(cut + 1);
      return;
    }
    case NodeKind::Linalg:
      if (is_matmul(n)) {
        if (arg == 1) out += " @ ";
      } else {
        LinalgSpec whole = n.linalg;
        whole.part = 0;
        out += arg == 0 ? std::string(linalg_info(n.linalg.fn).name) + "("
               : arg == n.nargs ? linalg_keywords(whole) + ")" + linalg_subscript(n.linalg) : ", ";
      }
      return;
    case NodeKind::Op: break;
  }
  const OpInfo& info = op_info(n.op);
  int level = node_op_level(g, n);
  if (level == kUnaryLevel) {
    if (arg == 0) out += info.symbol;
  } else if (level != kAtomLevel) {
    if (arg == 1) out += std::string(" ") + info.symbol + " ";
  } else {
    out += arg == 0 ? std::string(info.name) + "(" : arg == n.nargs ? ")" : ", ";
  }
}

}  // namespace

std::vector<Statement> parse_program(std::string_view text, Graph& g) {
  if (text.size() > kMaxExpressionBytes)
    parse_error(kMaxExpressionBytes, "expression is longer than " + std::to_string(kMaxExpressionBytes) + " bytes");
  std::vector<Statement> program = Parser(text, g).parse_all();
  g.roots = {program.back().root};
  return program;
}

int parse_expression(std::string_view text, Graph& g) { return parse_program(text, g).back().root; }

std::string format_expression(const Graph& g, int root) {
  if (root < 0 || root >= static_cast<int>(g.nodes().size()))
    throw Error(Status::BadArgument, "format_expression: " + std::to_string(root) + " is not a node of the graph");
  // An explicit stack: graphs built in C++ can be far deeper than the C++ stack allows.
  struct Frame {
    int node, next_arg;
    bool parens;
  };
  std::vector<Frame> stack{{root, 0, false}};
  std::string out;
  while (!stack.empty()) {
    Frame& f = stack.back();
    const Node& n = g.node(f.node);
    if (f.next_arg == 0 && f.parens) out += '(';
    append_piece(out, g, n, f.next_arg);
    if (out.size() > kMaxExpressionBytes)
      throw Error(Status::BadArgument, "format_expression: the text would exceed " +
                                           std::to_string(kMaxExpressionBytes) +
                                           " bytes (shared subexpressions are written out at every use)");
    if (f.next_arg < n.nargs) {
      int arg = f.next_arg++;
      int child = n.args[arg];
      stack.push_back({child, 0, needs_parens(g, n, arg, g.node(child))});  // f is invalid from here
    } else {
      if (f.parens) out += ')';
      stack.pop_back();
    }
  }
  return out;
}

std::vector<std::string> generator_signatures() {
  std::vector<std::string> out;
  for (const GenSignature& g : kGenSignatures) {
    std::string text = std::string(g.name) + "(";
    for (int i = 0; i < static_cast<int>(std::size(g.params)) && !g.params[i].empty(); ++i)
      text += (i ? ", " : "") + std::string(g.params[i]) + (i < g.required ? "" : "=");
    out.push_back(text + ")");
  }
  return out;
}

}  // namespace kiln
