// The expression parser and printer: Python's precedence, exact literals, print -> parse
// round trips over every op in the table, hash-consing, and errors that name the position
// and the offending token instead of crashing.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "error.hpp"
#include "graph.hpp"
#include "parser.hpp"

using namespace kiln;

namespace {

std::string key_of(std::string_view text) {
  Graph g;
  parse_expression(text, g);
  return g.key();
}

std::string reformat(std::string_view text) {
  Graph g;
  int root = parse_expression(text, g);
  return format_expression(g, root);
}

const Node& root_node(const Graph& g) { return g.node(g.roots.at(0)); }

int count_ops(const Graph& g, Op op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.kind == NodeKind::Op && node.op == op;
  return n;
}

Scalar parse_literal(std::string_view text) {
  Graph g;
  parse_expression(text, g);
  REQUIRE(g.nodes().size() == 1);
  REQUIRE(root_node(g).kind == NodeKind::Literal);
  return root_node(g).value;
}

// parse -> format -> parse must give the very same graph.
void check_round_trip(std::string_view text) {
  INFO("expression: " << text);
  Graph first;
  int root = parse_expression(text, first);
  std::string printed = format_expression(first, root);
  INFO("printed as: " << printed);
  Graph second;
  parse_expression(printed, second);
  CHECK(second.key() == first.key());
  CHECK(format_expression(second, second.roots[0]) == printed);
}

}  // namespace

TEST_CASE("multiplication binds tighter than addition", "[parser]") {
  CHECK(key_of("a + b * c") == key_of("a + (b * c)"));
  CHECK(key_of("a + b * c") != key_of("(a + b) * c"));
  CHECK(reformat("a + b * c") == "a + b * c");
  CHECK(reformat("(a + b) * c") == "(a + b) * c");
  CHECK(key_of("a - b - c") == key_of("(a - b) - c"));
  CHECK(reformat("a - (b - c)") == "a - (b - c)");
  CHECK(key_of("a // b % c * d / e") == key_of("(((a // b) % c) * d) / e"));
}

TEST_CASE("power binds tighter than a unary minus on its left and is right-associative", "[parser]") {
  Graph g;
  parse_expression("-x**3", g);
  REQUIRE(root_node(g).kind == NodeKind::Op);
  CHECK(root_node(g).op == Op::negative);
  CHECK(g.node(root_node(g).args[0]).op == Op::power);
  CHECK(key_of("-x**3") == key_of("-(x**3)"));
  CHECK(key_of("-x**2") == key_of("-(x**2)"));
  CHECK(key_of("a ** b ** c") == key_of("a ** (b ** c)"));
  CHECK(key_of("~a ** 2") == key_of("~(a ** 2)"));
  CHECK(key_of("-a * b") == key_of("(-a) * b"));
  CHECK(reformat("(-x) ** 3") == "(-x) ** 3");
}

TEST_CASE("x ** 2, x ** 0.5 and x ** -1.0 are NumPy's square, sqrt and reciprocal; power() stays power", "[parser]") {
  auto root_op = [](const char* text) {
    Graph g;
    parse_expression(text, g);
    return root_node(g).op;
  };
  CHECK(root_op("x ** 2") == Op::square);
  CHECK(root_op("x ** 2.0") == Op::square);
  CHECK(root_op("x ** 0.5") == Op::sqrt);
  CHECK(root_op("x ** -1.0") == Op::reciprocal);
  CHECK(root_op("x ** 3") == Op::power);
  CHECK(root_op("x ** -1") == Op::power);  // integer -1: integer arrays must not become reciprocal
  CHECK(root_op("power(x, 0.5)") == Op::power);
  CHECK(root_op("2 ** 2") == Op::power);  // a literal base is Python arithmetic, not an array's **
  CHECK(key_of("(a + b) ** 2") == key_of("square(a + b)"));
}

TEST_CASE("the exponent of a power may carry its own sign", "[parser]") {
  Graph g;
  parse_expression("2**-1", g);
  const Node& root = root_node(g);
  REQUIRE(root.op == Op::power);
  CHECK(g.node(root.args[0]).value.i == 2);
  const Node& exponent = g.node(root.args[1]);
  REQUIRE(exponent.kind == NodeKind::Literal);
  CHECK(exponent.value.i == -1);
  CHECK(key_of("2 ** -x ** 3") == key_of("2 ** (-(x ** 3))"));
}

TEST_CASE("bitwise operators follow Python: + over shifts over & over ^ over | over comparisons", "[parser]") {
  CHECK(key_of("a << b + c") == key_of("a << (b + c)"));
  CHECK(key_of("a >> b * c") == key_of("a >> (b * c)"));
  CHECK(key_of("a & b << c") == key_of("a & (b << c)"));
  CHECK(key_of("a << b >> c") == key_of("(a << b) >> c"));
  CHECK(key_of("a < b << c") == key_of("a < (b << c)"));
  CHECK(key_of("a <= b >> c") == key_of("a <= (b >> c)"));
  CHECK(key_of("a | b & c") == key_of("a | (b & c)"));
  CHECK(key_of("a ^ b & c") == key_of("a ^ (b & c)"));
  CHECK(key_of("a | b ^ c") == key_of("a | (b ^ c)"));
  CHECK(key_of("a & b + c") == key_of("a & (b + c)"));
  CHECK(key_of("a < b | c") == key_of("a < (b | c)"));
  CHECK(key_of("a | b == c & d") == key_of("(a | b) == (c & d)"));
  CHECK_THROWS_AS(key_of("a < b & b < c"), Error);  // a < (b & b) < c: a chain, as in Python
}

TEST_CASE("operator symbols map to the op table's rows", "[parser]") {
  for (int i = 0; i < kNumOps; ++i) {
    const OpInfo& info = kOpInfo[i];
    std::string symbol = info.symbol;
    if (symbol.empty()) continue;
    INFO("op " << info.name);
    Graph g;
    parse_expression(info.arity == 2 ? "a " + symbol + " b" : symbol + "a", g);
    REQUIRE(root_node(g).kind == NodeKind::Op);
    CHECK(root_node(g).op == static_cast<Op>(i));
  }
  Graph g;
  parse_expression("+a", g);
  CHECK(root_node(g).kind == NodeKind::Input);  // unary plus adds no node
}

TEST_CASE("integer, float and bool literals keep their kind and value", "[parser][literal]") {
  CHECK(parse_literal("42").kind == Kind::Int);
  CHECK(parse_literal("42").i == 42);
  CHECK(parse_literal("007").i == 7);
  CHECK(parse_literal("9223372036854775807").i == std::numeric_limits<int64_t>::max());
  for (auto [text, value] : std::vector<std::pair<const char*, double>>{
           {"1.5", 1.5}, {".5", 0.5}, {"1.", 1.0}, {"1e-3", 1e-3}, {"2E+5", 2e5}, {"1.e2", 100.0}, {"0.1", 0.1},
           {"1e999", std::numeric_limits<double>::infinity()}, {"1e-999", 0.0}, {"0.000e999999", 0.0},
           {"inf", std::numeric_limits<double>::infinity()}}) {
    INFO(text);
    Scalar s = parse_literal(text);
    CHECK(s.kind == Kind::Float);
    CHECK(s.f == value);
  }
  CHECK(std::isnan(parse_literal("nan").f));
  CHECK(parse_literal("True").kind == Kind::Bool);
  CHECK(parse_literal("True").i == 1);
  CHECK(parse_literal("False").i == 0);
}

TEST_CASE("a minus written before a number folds into one literal", "[parser][literal]") {
  CHECK(parse_literal("-1.5").f == -1.5);
  CHECK(parse_literal("- 7").i == -7);
  CHECK(parse_literal("-9223372036854775808").i == std::numeric_limits<int64_t>::min());
  CHECK(std::signbit(parse_literal("-0.0").f));
  CHECK(parse_literal("-inf").f == -std::numeric_limits<double>::infinity());
  CHECK(std::signbit(parse_literal("-nan").f));
  Graph g;
  int root = parse_expression("-1", g);
  CHECK(g.node(root).pos == 0);

  Graph parenthesised;  // "-(1)" is an op on a literal, not a literal
  parse_expression("-(1)", parenthesised);
  CHECK(root_node(parenthesised).op == Op::negative);
  Graph powered;  // -2**2 is -(2**2), as in Python
  parse_expression("-2**2", powered);
  CHECK(root_node(powered).op == Op::negative);
  Graph boolean;  // True is not a number: -True is an op (which typing then refuses)
  parse_expression("-True", boolean);
  CHECK(root_node(boolean).op == Op::negative);
}

TEST_CASE("printed literals read back bit for bit", "[parser][literal]") {
  std::vector<Scalar> values = {Scalar::of_int(0),
                                Scalar::of_int(-1),
                                Scalar::of_int(std::numeric_limits<int64_t>::min()),
                                Scalar::of_int(std::numeric_limits<int64_t>::max()),
                                Scalar::of_bool(true),
                                Scalar::of_bool(false)};
  for (double f : {0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3.0, 1e16, 100000.0, 123456789012345678.0, 1e-320, 5e-324,
                   std::numeric_limits<double>::max(), -std::numeric_limits<double>::min(),
                   std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::quiet_NaN()})
    values.push_back(Scalar::of_float(f));
  for (const Scalar& v : values) {
    // As an operand in each context that parenthesises differently, built in the order
    // the parser will create the nodes so that the keys compare.
    Graph g;
    int lit = g.literal(v);
    int power = g.op(Op::power, {lit, lit});
    int x = g.input("x");
    int root = g.op(Op::add, {power, g.op(Op::subtract, {x, g.op(Op::negative, {lit})})});
    std::string printed = format_expression(g, root);
    INFO("printed as: " << printed);
    Graph back;
    parse_expression(printed, back);
    g.roots = {root};
    CHECK(back.key() == g.key());
    const Node& reread = back.node(back.node(back.roots[0]).args[0]);
    const Scalar& w = back.node(reread.args[0]).value;
    CHECK(w.kind == v.kind);
    CHECK(w.i == v.i);
    if (std::isnan(v.f)) {
      CHECK(std::isnan(w.f));
      CHECK(std::signbit(w.f) == std::signbit(v.f));
    } else {
      CHECK(std::memcmp(&w.f, &v.f, sizeof w.f) == 0);
    }
  }
}

TEST_CASE("float literals always print as floats", "[parser][literal]") {
  CHECK(reformat("1.0") == "1.0");
  CHECK(reformat("100000.") == "1e+05");
  CHECK(reformat("-0.0") == "-0.0");
  CHECK(reformat("0.1") == "0.1");
  CHECK(reformat("1") == "1");
  CHECK(reformat("-(1)") == "-(1)");
  CHECK(reformat("-(-1)") == "--1");
  CHECK(reformat("(-1) ** 2") == "(-1) ** 2");
  CHECK(reformat("x - -1") == "x - -1");
  CHECK(reformat("1e999 - nan") == "inf - nan");
}

TEST_CASE("every op in the table survives print -> parse", "[parser][roundtrip]") {
  const char* operands[] = {"a", "b * 2", "-c", "sqrt(d)", "(e < 1.5)", "f ** -2", "int32(g)", "-3.25"};
  for (int i = 0; i < kNumOps; ++i) {
    const OpInfo& info = kOpInfo[i];
    std::string call = std::string(info.name) + "(";
    for (int a = 0; a < info.arity; ++a) call += std::string(a ? ", " : "") + operands[(i + a) % 8];
    call += ")";
    check_round_trip(call);
    check_round_trip("x * " + call + " - 1");
    Graph g;
    parse_expression(call, g);
    CHECK(root_node(g).op == static_cast<Op>(i));
  }
}

TEST_CASE("varied expressions survive print -> parse", "[parser][roundtrip]") {
  for (const char* text : {
           "a + b * c", "(a + b) * c", "a - (b - c)", "a - b - c", "a / (b / c)", "a ** b ** c", "(a ** b) ** c",
           "-a ** 2", "(-a) ** 2", "2 ** -1", "2 ** -x", "-(-a)", "- -a", "~~a", "~-1", "-(1)", "-(-1)", "-+1",
           "--1", "a < b", "(a < b) < c", "a < (b < c)", "(a == b) != (c >= d)", "a | b & c ^ d",
           "(a | b) & (c ^ d)", "where(x > 0, sqrt(x), -x ** 2)", "clip(x, -1, 1.5) + relu(y) * sigmoid(z)",
           "float32(x) + int64(y) * bool(z) - float64(1)", "arctan2(y, x) % 2.5 // 1e-3",
           "maximum(minimum(a, 1), fmax(b, nan)) - inf", "True & (a | False)", "x + -9223372036854775808",
           "(-9223372036854775808) ** 2", "-9223372036854775807 ** 2", "a * b + a * b", "-0.0 * x + 1e300",
           "a + (b + (c + (d + e)))", "((((a))))", "hypot(copysign(a, -b), 2) ** 0.5", "~(a & b) | ~a ^ ~b",
           "-(a + b)", "-(a ** b) ** c", "a % -b", "isnan(x) | isinf(y) & isfinite(z)",
           // power nodes whose `**` form would read back as square, sqrt or reciprocal
           "power(relu(x) - 7, .5)", "power(x, 2)", "power(x, 2.0) + 1", "power(x, -1.0) * y", "power(-x, 0.5) ** 3",
           "power(x, -1) + power(2, 0.5) + x ** 3", "a << b >> c", "a << (b >> c)", "(a & b) << c + 1",
           "-a << -b", "a >> b ** 2 < c", "(a << b) + c",
       })
    check_round_trip(text);
}

TEST_CASE("a deep left chain prints without parentheses and reads back", "[parser][roundtrip]") {
  Graph g;
  int sum = g.input("x0");
  for (int i = 1; i < 100000; ++i) sum = g.op(Op::add, {sum, g.input("x" + std::to_string(i % 7))});
  g.roots = {sum};
  std::string printed = format_expression(g, sum);
  CHECK(printed.find('(') == std::string::npos);
  Graph back;
  parse_expression(printed, back);
  CHECK(back.key() == g.key());
}

TEST_CASE("printing refuses text that sharing would make exponentially long", "[parser]") {
  Graph g;
  int x = g.input("x");
  for (int i = 0; i < 40; ++i) x = g.op(Op::add, {x, x});
  try {
    format_expression(g, x);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.status() == Status::BadArgument);
  }
  CHECK_THROWS_AS(format_expression(g, -1), Error);
  CHECK_THROWS_AS(format_expression(g, static_cast<int>(g.nodes().size())), Error);
}

TEST_CASE("equal subexpressions become one node", "[parser]") {
  Graph g;
  parse_expression("a*b + a*b", g);
  CHECK(count_ops(g, Op::multiply) == 1);
  CHECK(count_ops(g, Op::add) == 1);
  CHECK(g.nodes().size() == 4);
  Graph h;
  parse_expression("sqrt(a) * sqrt(a) + sqrt(a)", h);
  CHECK(count_ops(h, Op::sqrt) == 1);
}

TEST_CASE("function names, aliases and casts resolve through the op table", "[parser]") {
  for (auto [alias, canonical] : std::vector<std::pair<const char*, const char*>>{
           {"absolute(x)", "abs(x)"}, {"mod(x, y)", "remainder(x, y)"}, {"true_divide(x, y)", "divide(x, y)"},
           {"pow(x, y)", "power(x, y)"}, {"asin(x)", "arcsin(x)"}, {"acos(x)", "arccos(x)"},
           {"atan(x)", "arctan(x)"}, {"atan2(x, y)", "arctan2(x, y)"}, {"asinh(x)", "arcsinh(x)"},
           {"acosh(x)", "arccosh(x)"}, {"atanh(x)", "arctanh(x)"}, {"add(x, y)", "x + y"},
           {"radians(x)", "deg2rad(x)"}, {"degrees(x)", "rad2deg(x)"}, {"around(x, 2)", "round(x, 2)"},
           {"round(x)", "round(x, 0)"}, {"round(x, decimals=-1)", "round(x, -1)"}, {"left_shift(x, y)", "x << y"},
           {"right_shift(x, 2)", "x >> 2"}})
    CHECK(key_of(alias) == key_of(canonical));
  for (DType t : {DType::Bool, DType::Int32, DType::Int64, DType::Float32, DType::Float64}) {
    Graph g;
    parse_expression(std::string(dtype_name(t)) + "(x)", g);
    REQUIRE(root_node(g).kind == NodeKind::Cast);
    CHECK(root_node(g).dtype == t);
  }
}

TEST_CASE("names may hold digits and underscores and do not shadow functions", "[parser]") {
  Graph g;
  parse_expression("x_1 + _y2 * A9_b - sqrt + float32 + x_1", g);
  CHECK(g.input_names() == std::vector<std::string>{"x_1", "_y2", "A9_b", "sqrt", "float32"});
  Graph spaced;
  parse_expression("\tsqrt (\n x\r\n)  ", spaced);
  CHECK(root_node(spaced).op == Op::sqrt);
  CHECK(root_node(spaced).pos == 1);
}

TEST_CASE("nodes record the byte offset of what wrote them", "[parser]") {
  Graph g;
  int root = parse_expression("a + sqrt(b) * -2.5", g);
  const Node& add = g.node(root);
  CHECK(add.pos == 2);
  CHECK(g.node(add.args[0]).pos == 0);
  const Node& mul = g.node(add.args[1]);
  CHECK(mul.pos == 12);
  CHECK(g.node(mul.args[0]).pos == 4);
  CHECK(g.node(g.node(mul.args[0]).args[0]).pos == 9);
  CHECK(g.node(mul.args[1]).pos == 14);
}

TEST_CASE("bad expressions report status, position and the offending token", "[parser][errors]") {
  struct Case {
    std::string text;
    Status status;
    long offset;
    std::string message;
  };
  std::vector<Case> cases = {
      {"a +", Status::ParseError, 3, "parse error at position 3: unexpected end of expression"},
      {"(a", Status::ParseError, 2, "parse error at position 2: unexpected end of expression; expected ')'"},
      {"a)", Status::ParseError, 1, "parse error at position 1: unexpected ')'"},
      {"a b", Status::ParseError, 2, "parse error at position 2: unexpected 'b'"},
      {"", Status::ParseError, 0, "parse error at position 0: unexpected end of expression"},
      {"  \n", Status::ParseError, 3, "parse error at position 3: unexpected end of expression"},
      {"sqr(a)", Status::UnknownName, 0, "unknown function 'sqr' at position 0"},
      {"sqrt(a, b)", Status::BadArgument, 0, "sqrt takes 1 argument, got 2 at position 0"},
      {"round(a, 1.5)", Status::ParseError, 9, "parse error at position 9: round: decimals must be an integer (of int32's range)"},
      {"1.5 * round(a, 1.5)", Status::ParseError, 15,
       "parse error at position 15: round: decimals must be an integer (of int32's range)"},
      {"round(a, decimals=3000000000)", Status::ParseError, 18,
       "parse error at position 18: round: decimals must be an integer (of int32's range)"},
      {"round(a, True)", Status::ParseError, 9, "parse error at position 9: round: decimals must be an integer (of int32's range)"},
      {"round(a, b, 1)", Status::BadArgument, 0, "round takes an array and decimals, got 3 arguments at position 0"},
      {"round(a, digits=1)", Status::ParseError, 9,
       "parse error at position 9: keyword arguments are not supported ('digits'); round takes decimals="},
      {"isclose(a)", Status::BadArgument, 0, "isclose at position 0 needs a and b"},
      {"allclose(a, b, tol=1)", Status::ParseError, 15,
       "parse error at position 15: allclose has no keyword argument 'tol' (it takes a, b, rtol, atol, equal_nan)"},
      {"isclose(a, b, equal_nan=1)", Status::ParseError, 24, "parse error at position 24: unexpected '1'; equal_nan takes True or False"},
      {"isclose(a, b, 1, 2, False, 3)", Status::ParseError, 27, "parse error at position 27: isclose takes at most 5 arguments"},
      {"x + where(a, b)", Status::BadArgument, 4, "where takes 3 arguments, got 2 at position 4"},
      {"float32()", Status::BadArgument, 0, "float32 takes 1 argument, got 0 at position 0"},
      {"a < b < c", Status::ParseError, 6,
       "parse error at position 6: chained comparisons are not supported; use (a < b) & (b < c)"},
      {"a == b | c != d", Status::ParseError, 11, "chained comparisons"},
      {"1e", Status::ParseError, 0, "parse error at position 0: malformed number '1e'"},
      {"x * 1.2.3", Status::ParseError, 4, "malformed number '1.2.3'"},
      {"2x", Status::ParseError, 0, "malformed number '2x'"},
      {"99999999999999999999", Status::ParseError, 0, "integer literal out of range"},
      {"9223372036854775808", Status::ParseError, 0, "integer literal out of range"},
      {"-9223372036854775809", Status::ParseError, 1, "integer literal out of range"},
      {"a $ b", Status::ParseError, 2, "parse error at position 2: unexpected character '$'"},
      {std::string("a\0b", 3), Status::ParseError, 1, "unexpected character '\\x00'"},
      {"x + \xc3\xa9", Status::ParseError, 4, "unexpected character '\\xc3'"},
      {"a ! b", Status::ParseError, 2, "unexpected character '!'"},
      {"a + b = c", Status::ParseError, 6, "unexpected '='"},
      {"a = ", Status::ParseError, 4, "unexpected end of expression"},
      {"a; ; b", Status::ParseError, 3, "unexpected ';'"},
      {"t = a b", Status::ParseError, 6, "unexpected 'b'; expected ';'"},
      {"sum(x, axis=40)", Status::ParseError, 12, "axis 40 is out of range"},
      {"sum(x, axis=(0, -1, 0))", Status::ParseError, 20, "axis 0 is repeated"},
      {"sum(x, foo=1)", Status::ParseError, 7, "sum has no keyword argument 'foo' (it takes axis, keepdims)"},
      {"mean(x, ddof=1)", Status::ParseError, 8, "mean has no keyword argument 'ddof'"},
      {"sum(x, keepdims=1)", Status::ParseError, 16, "keepdims takes True or False"},
      {"sum(x, axis=1, axis=2)", Status::ParseError, 15, "keyword argument 'axis' is given twice"},
      {"sum(x, axis=1.5)", Status::ParseError, 12, "expected an integer for axis"},
      {"sum(x, 1, 2)", Status::ParseError, 10, "takes at most 2 positional arguments"},
      {"sum(keepdims=True, x)", Status::ParseError, 19, "positional argument after keyword arguments"},
      {"argmin(x, axis=(0, 1))", Status::BadArgument, 0, "argmin at position 0 takes one axis or None"},
      {"sum()", Status::BadArgument, 0, "sum takes an array argument, got none"},
      {"where(c, x=1, y)", Status::ParseError, 9, "keyword arguments are not supported ('x')"},
      {"maximum(a b)", Status::ParseError, 10, "unexpected 'b'; expected ',' or ')'"},
      {"True(1)", Status::ParseError, 4, "unexpected '('"},
      {"inf(1)", Status::ParseError, 3, "unexpected '('"},
      {"a ** ** b", Status::ParseError, 5, "unexpected '**'"},
  };
  for (const Case& c : cases) {
    INFO("expression: " << c.text);
    Graph g;
    g.roots = {-7};
    try {
      parse_expression(c.text, g);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.status() == c.status);
      CHECK(e.offset() == c.offset);
      CHECK_THAT(e.what(), Catch::Contains(c.message));
    }
    CHECK(g.roots == std::vector<int>{-7});  // left alone on error
  }
}

TEST_CASE("deep nesting is a parse error, not a stack overflow", "[parser][errors]") {
  const int n = 10000;
  for (const std::string& text : {std::string(n, '(') + "a" + std::string(n, ')'), std::string(n, '-') + "a",
                                  std::string(n, '~') + "1", [&] {
                                    std::string calls;
                                    for (int i = 0; i < n; ++i) calls += "sqrt(";
                                    return calls + "x" + std::string(n, ')');
                                  }(),
                                  [&] {
                                    std::string powers = "x";
                                    for (int i = 0; i < n; ++i) powers += "**x";
                                    return powers;
                                  }()}) {
    Graph g;
    try {
      parse_expression(text, g);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.status() == Status::ParseError);
      CHECK_THAT(e.what(), Catch::Contains("nested too deeply"));
    }
  }
  // Printing never nests deeper than the text it came from.
  check_round_trip(std::string(kMaxExpressionDepth, '-') + "1");
  check_round_trip("x - " + std::string(kMaxExpressionDepth - 2, '-') + "(1)");
  int ok = kMaxExpressionDepth - 1;  // the outermost level counts too
  Graph g;
  CHECK_NOTHROW(parse_expression(std::string(ok, '(') + "a" + std::string(ok, ')'), g));
  CHECK_THROWS_AS(parse_expression(std::string(ok + 1, '(') + "a" + std::string(ok + 1, ')'), g), Error);
}

TEST_CASE("text longer than the limit is refused before parsing", "[parser][errors]") {
  std::string text(kMaxExpressionBytes + 1, ' ');
  text[0] = 'a';
  Graph g;
  try {
    parse_expression(text, g);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.status() == Status::ParseError);
    CHECK_THAT(e.what(), Catch::Contains("longer than"));
  }
  CHECK(g.nodes().empty());
  std::string long_sum = "x";
  while (long_sum.size() + 4 < kMaxExpressionBytes) long_sum += " + x";
  CHECK_NOTHROW(parse_expression(long_sum, g));
}

TEST_CASE("reductions parse NumPy's arguments and print back", "[parser][reduce]") {
  Graph g;
  parse_expression("sum(x, axis=(0, -1), keepdims=True)", g);
  const Node& r = root_node(g);
  REQUIRE(r.kind == NodeKind::Reduce);
  CHECK(r.reduce.reduction == Reduction::sum);
  CHECK_FALSE(r.reduce.all_axes);
  CHECK(r.reduce.axes == ((uint64_t{1} << ReduceSpec::bit_of(0)) | (uint64_t{1} << ReduceSpec::bit_of(-1))));
  CHECK(r.reduce.keepdims);
  // A positional axis is axis=; None is every axis; a trailing comma is allowed.
  CHECK(key_of("mean(x, 1)") == key_of("mean(x, axis=1)"));
  CHECK(key_of("mean(x, (1,))") == key_of("mean(x, axis=1)"));
  CHECK(key_of("max(x, axis=None)") == key_of("max(x)"));
  CHECK(key_of("sum(x, axis=(1, 0))") == key_of("sum(x, axis=(0, 1))"));
  CHECK(key_of("sum(x, keepdims=False)") == key_of("sum(x)"));
  CHECK(key_of("var(x, ddof=1)") != key_of("var(x)"));
  CHECK(key_of("sum(x, axis=())") != key_of("sum(x)"));
  for (const char* text : {"sum(x)", "prod(x, axis=0)", "mean(x, axis=(0, 2), keepdims=True)", "std(x, axis=-1, ddof=1)",
                           "var(a * b + 1, keepdims=True, ddof=2)", "min(x) + max(x, axis=1)", "any(x > 0, axis=())",
                           "all(isfinite(x))", "argmin(x, axis=-2)", "argmax(x)", "-sum(x) ** 2",
                           "sum(x - mean(x, axis=0), axis=0)"})
    check_round_trip(text);
}

TEST_CASE("programs: statements, assignments, the last value", "[parser][program]") {
  Graph g;
  std::vector<Statement> p = parse_program("t = a * b; s = sum(t); t - s;", g);
  REQUIRE(p.size() == 3);
  CHECK(p[0].name == "t");
  CHECK(p[1].name == "s");
  CHECK(p[2].name.empty());
  CHECK(g.roots == std::vector<int>{p[2].root});
  // Assigned names are those values later on: t is one node, not an input.
  CHECK(g.input_names() == std::vector<std::string>{"a", "b"});
  CHECK(g.node(p[2].root).args[0] == p[0].root);
  CHECK(g.node(p[2].root).args[1] == p[1].root);
  // Before its assignment a name is an input; reassigning replaces it.
  Graph h;
  std::vector<Statement> q = parse_program("a = a + 1; a = a * 2", h);
  CHECK(h.input_names() == std::vector<std::string>{"a"});
  CHECK(key_of("a = a + 1; a = a * 2") == key_of("(a + 1) * 2"));
  CHECK(q[1].root == h.roots[0]);
  // Comparisons with == stay comparisons.
  CHECK(key_of("a == b") == key_of("equal(a, b)"));
}

TEST_CASE("generator calls parse NumPy's arguments and print back", "[parser][generate]") {
  struct Printed {
    const char* text;
    const char* printed;
  };
  const Printed cases[] = {
      {"arange(10)", "arange(0, 10, 1, dtype=int64)"},
      {"arange(1.5, 4, step=0.5, dtype=float32)", "arange(1.5, 4, 0.5, dtype=float32)"},
      {"zeros((3, 4))", "full((3, 4), 0.0, dtype=float64)"},
      {"ones(5, dtype=int32)", "full((5,), 1.0, dtype=int32)"},
      {"full((), True)", "full((), True, dtype=bool)"},
      {"linspace(0, 1, 5, endpoint=False)", "linspace(0.0, 1.0, 5, endpoint=False, dtype=float64)"},
      {"eye(3, k=-1)", "eye(3, 3, k=-1, dtype=float64)"},
      {"zeros_like(x + 1)", "full_like(x + 1, 0)"},
      {"full_like(x, 2.5, dtype=int64)", "full_like(x, 2.5, dtype=int64)"},
      {"uniform(size=(2, 3), seed=7)", "uniform(0.0, 1.0, size=(2, 3), seed=7, dtype=float64)"},
      {"random(seed=1, dtype=float32)", "uniform(0.0, 1.0, seed=1, dtype=float32)"},
      {"normal(1, 2, shape=100, seed=3)", "normal(1.0, 2.0, size=(100,), seed=3, dtype=float64)"},
      {"standard_normal(seed=0)", "normal(0.0, 1.0, seed=0, dtype=float64)"},
      {"integers(6, seed=5)", "integers(0, 6, seed=5, dtype=int64)"},
      {"integers(-3, 3, 10, 5, int32)", "integers(-3, 3, size=(10,), seed=5, dtype=int32)"},
      {"bernoulli(0.25, seed=2)", "bernoulli(0.25, seed=2)"},
      {"where(uniform(seed=1) < 0.5, x, 0)", "where(uniform(0.0, 1.0, seed=1, dtype=float64) < 0.5, x, 0)"},
  };
  for (const Printed& c : cases) {
    INFO(c.text);
    CHECK(reformat(c.text) == c.printed);
    check_round_trip(c.text);
    check_round_trip(c.printed);
  }
  // Parameters that change values are part of a node's identity; equal calls are one node.
  CHECK(key_of("uniform(seed=1)") != key_of("uniform(seed=2)"));
  CHECK(key_of("arange(0.0, 1.0, 0.5)") != key_of("arange(0, 1, 0.5)"));
  CHECK(key_of("full((2,), -0.0)") != key_of("full((2,), 0.0)"));
  Graph g;
  parse_expression("uniform(seed=4) + uniform(seed=4)", g);
  CHECK(g.node(g.roots[0]).args[0] == g.node(g.roots[0]).args[1]);
}

TEST_CASE("generator calls with bad arguments name the function and the argument", "[parser][generate][errors]") {
  struct Bad {
    const char* text;
    Status status;
    const char* words;
  };
  const Bad cases[] = {
      {"zeros()", Status::BadArgument, "zeros at position 0 needs its argument 'shape'"},
      {"zeros((2, -3))", Status::BadArgument, "zeros: negative dimensions are not allowed, got shape (2, -3)"},
      {"zeros((2,), k=1)", Status::ParseError, "zeros has no keyword argument 'k' (it takes shape, dtype)"},
      {"zeros((2,), dtype=float16)", Status::BadArgument, "dtype must be one of"},
      {"zeros((2,), float64, 3)", Status::ParseError, "zeros takes at most 2 arguments"},
      {"arange(0, 5, 0)", Status::BadArgument, "arange: step must not be zero"},
      {"arange(0, x)", Status::BadArgument, "arange: stop must be a number"},
      {"arange(5, dtype=bool)", Status::TypeError, "arange cannot make bool arrays"},
      {"linspace(0, 1, -2)", Status::BadArgument, "linspace: num must be non-negative"},
      {"linspace(0, 1, 3, endpoint=1)", Status::BadArgument, "endpoint takes True or False"},
      {"uniform(size=3)", Status::BadArgument, "needs seed="},
      {"uniform(1, 0, seed=1)", Status::BadArgument, "high must be greater than low"},
      {"uniform(seed=-1)", Status::BadArgument, "seed must be non-negative"},
      {"uniform(seed=1.5)", Status::BadArgument, "seed must be an integer"},
      {"uniform(seed=1, dtype=int32)", Status::TypeError, "uniform cannot make int32 arrays"},
      {"normal(0, -1, seed=1)", Status::BadArgument, "standard deviation must be finite and >= 0"},
      {"integers(5, 5, seed=1)", Status::BadArgument, "high must be greater than low"},
      {"bernoulli(2, seed=1)", Status::BadArgument, "p must be in [0, 1]"},
      {"full((2,), 1, fill_value=2)", Status::ParseError, "got argument 'fill_value' twice"},
      {"full(shape=(2,), 3)", Status::ParseError, "positional argument after keyword arguments"},
      {"zeros((1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1))",
       Status::BadArgument, "zeros: a shape of 33 dimensions (at most 32) (at position 0)"},
  };
  for (const Bad& c : cases) {
    INFO(c.text);
    Graph g;
    try {
      parse_expression(c.text, g);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.status() == c.status);
      CHECK_THAT(e.what(), Catch::Contains(c.words));
    }
  }
}

TEST_CASE("matmul and numpy.linalg calls parse, print and read back", "[parser][roundtrip][linalg]") {
  for (const char* text :
       {"a @ b", "relu(a @ b + c)", "a @ b @ c", "a @ (b @ c)", "2 * a @ b", "a @ b * 2", "-a @ b", "(a + b) @ c",
        "a @ b ** 2", "solve(a, b)", "inv(a) @ b", "det(a)", "cholesky(a)", "qr(a)[0]", "qr(a, mode='complete')[1]",
        "qr(a, mode='r')", "eigh(a, UPLO='U')[1]", "eigvalsh(a)", "svd(a)[2]", "svd(a, full_matrices=False)[0]",
        "svd(a, compute_uv=False)", "lstsq(a, b)[0]", "lstsq(a, b, rcond=1e-10)[2]", "norm(x)", "norm(x, ord='fro')",
        "norm(x, ord=inf, axis=(0, 1))", "norm(x, ord=-inf, axis=1)", "norm(x, ord=3.0, axis=-1, keepdims=True)"})
    check_round_trip(text);
  // `@` binds like `*` and left to right, as in Python.
  CHECK(key_of("a @ b @ c") == key_of("(a @ b) @ c"));
  CHECK(key_of("a @ b @ c") != key_of("a @ (b @ c)"));
  CHECK(key_of("a * b @ c") == key_of("(a * b) @ c"));
  CHECK(key_of("a + b @ c") == key_of("a + (b @ c)"));
  CHECK(key_of("matmul(a, b)") == key_of("a @ b"));
  // Positional keywords in NumPy's order, and their defaults, name the same node.
  CHECK(key_of("qr(a, 'r')") == key_of("qr(a, mode='r')"));
  CHECK(key_of("qr(a, 'reduced')[1]") == key_of("qr(a)[1]"));
  CHECK(key_of("norm(x, 2, 1)") == key_of("norm(x, ord=2, axis=1)"));
  CHECK(key_of("svd(a, True, False)") == key_of("svd(a, compute_uv=False)"));
  CHECK(key_of("qr(a)[-1]") == key_of("qr(a)[1]"));
}

TEST_CASE("linalg calls refuse bad arguments with what was wrong", "[parser][linalg]") {
  auto fails_with = [](const char* text, const char* what) {
    INFO(text);
    Graph g;
    try {
      parse_program(text, g);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::Contains(what));
    }
  };
  fails_with("qr(a) + 1", "unpack them");
  fails_with("qr(a)[2]", "index 2 is out of range");
  fails_with("qr(a, mode='full')", "mode must be 'reduced', 'complete' or 'r'");
  fails_with("eigh(a, UPLO='X')[0]", "UPLO must be 'L' or 'U'");
  fails_with("norm(x, ord='max')", "invalid ord 'max'");
  fails_with("norm(x, 'fro', 0)", "needs two axes");
  fails_with("norm(x, axis=(0, 1, 2))", "axis must be None");
  fails_with("norm(x, 2, 1.5)", "axis must be an integer");
  fails_with("norm(x, 8, inf)", "axis must be an integer");  // found by the parser fuzzer
  fails_with("norm(x, 2, -inf)", "axis must be an integer");
  fails_with("norm(x, 2, 1e300)", "axis is out of range");
  fails_with("solve(a)", "takes 2 arrays, got 1");
  fails_with("inv(a, b)", "inv takes at most 1 argument");
  fails_with("svd(a, True, True, True)", "svd takes at most 3 arguments");
  fails_with("det(a, mode='r')", "det takes no argument 'mode'");
  fails_with("q, r = sum(a)", "only a call of qr, eigh, svd or lstsq");
  fails_with("q, r, s = qr(a)", "qr returns 2 arrays, not 3");
  fails_with("a @", "unexpected end");
  fails_with("norm(x, ord='fro", "unterminated");
  // Unpacking binds each name to its part.
  Graph g;
  std::vector<Statement> p = parse_program("q, r = qr(a); q @ r", g);
  REQUIRE(p.size() == 3);
  CHECK(p[0].name == "q");
  CHECK(g.node(p[1].root).linalg.part == 1);
  CHECK(g.node(g.node(p[2].root).args[0]).linalg.part == 0);
}
