// Arrays and views: slicing (Python semantics), transpose, reshape as view or copy,
// broadcast_to, wrap with release callbacks, copies of strided views.
#include <catch2/catch.hpp>

#include "array.hpp"

using kiln::Array;
using kiln::DType;
using kiln::Shape;

namespace {
Array arange(int64_t n) {
  Array a = Array::empty(DType::Int64, {n});
  for (int64_t i = 0; i < n; ++i) a.data_as<int64_t>()[i] = i;
  return a;
}
std::vector<int64_t> values(const Array& a) {
  Array c = a.copy();
  return std::vector<int64_t>(c.data_as<int64_t>(), c.data_as<int64_t>() + c.size());
}
}  // namespace

TEST_CASE("new arrays are 64-byte aligned and C-contiguous", "[array]") {
  for (int64_t n : {0, 1, 3, 1000}) {
    Array a = Array::empty(DType::Float32, {n, 3});
    CHECK(reinterpret_cast<uintptr_t>(a.data()) % 64 == 0);
    CHECK(a.is_c_contiguous());
    CHECK(a.strides() == Shape{12, 4});
  }
}

TEST_CASE("slices follow Python's rules", "[array]") {
  Array a = arange(10);
  CHECK(values(a.slice(0, 2, 8, 3)) == std::vector<int64_t>{2, 5});
  CHECK(values(a.slice(0, -3, 100)) == std::vector<int64_t>{7, 8, 9});
  CHECK(values(a.slice(0, 9, -100, -4)) == std::vector<int64_t>{9, 5, 1});
  CHECK(values(a.slice(0, 5, 2)).empty());
  CHECK(values(a.slice(0, -1, -11, -1)) == std::vector<int64_t>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0});
  CHECK_THROWS_AS(a.slice(0, 0, 5, 0), kiln::Error);
  CHECK_THROWS_AS(a.slice(1, 0, 5), kiln::Error);
  CHECK(a.index(0, -1).ndim() == 0);
  CHECK(*a.index(0, -1).data_as<int64_t>() == 9);
  CHECK_THROWS_AS(a.index(0, 10), kiln::Error);
}

TEST_CASE("reshape is a view when strides allow, a copy otherwise", "[array]") {
  Array a = arange(24).reshape({2, 3, 4});
  CHECK(a.shape() == Shape{2, 3, 4});
  Array v = a.reshape({6, -1});
  CHECK(v.data() == a.data());
  CHECK(v.shape() == Shape{6, 4});
  Array t = a.transpose();  // (4, 3, 2), not contiguous
  Array r = t.reshape({4, 6});
  CHECK(r.data() != a.data());
  CHECK(values(r) == values(t));
  Array s = a.slice(2, 0, 4, 2).reshape({12});  // every other element: one stride, viewable
  CHECK(s.data() == a.data());
  CHECK(values(s) == std::vector<int64_t>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22});
  CHECK_THROWS_AS(a.reshape({5, -1}), kiln::Error);
  CHECK_THROWS_AS(a.reshape({-1, -1}), kiln::Error);
}

TEST_CASE("transpose and broadcast_to", "[array]") {
  Array a = arange(6).reshape({2, 3});
  Array t = a.transpose();
  CHECK(t.shape() == Shape{3, 2});
  CHECK(values(t) == std::vector<int64_t>{0, 3, 1, 4, 2, 5});
  CHECK_THROWS_AS(a.transpose({0, 0}), kiln::Error);
  Array b = arange(3).broadcast_to({2, 3});
  CHECK(b.strides() == Shape{0, 8});
  CHECK(values(b) == std::vector<int64_t>{0, 1, 2, 0, 1, 2});
  try {
    arange(3).broadcast_to({4});
    FAIL("no error");
  } catch (const kiln::Error& e) {
    CHECK(std::string(e.what()) == "broadcast_to: shape (3,) cannot be broadcast to (4,)");
  }
}

TEST_CASE("wrapped memory: release runs once, after the last view is gone; not on failure", "[array]") {
  static int released = 0;
  released = 0;
  std::vector<double> mem(12, 1.0);
  {
    Array w = Array::wrap(mem.data(), DType::Float64, {3, 4}, {}, [] { ++released; });
    Array view = w.transpose().slice(0, 1, 3);
    w = Array();
    CHECK(released == 0);
    CHECK(view.shape() == Shape{2, 3});
  }
  CHECK(released == 1);
  CHECK_THROWS_AS(Array::wrap(mem.data(), DType::Float64, {3, 4}, {9, 8}, [] { ++released; }), kiln::Error);
  CHECK_THROWS_AS(Array::wrap(nullptr, DType::Float64, {3}, {}, [] { ++released; }), kiln::Error);
  CHECK_THROWS_AS(Array::empty(DType::Float64, {-1}), kiln::Error);
  CHECK_THROWS_AS(Array::empty(DType::Float64, Shape(33, 1)), kiln::Error);
  CHECK(released == 1);
}

TEST_CASE("wrap takes any stride on a dimension of length 1 or of an empty array, as NumPy does", "[array]") {
  std::vector<double> mem(10);
  for (int i = 0; i < 10; ++i) mem[i] = i;
  // A row of every other item whose length-1 axis has a stride of 3 bytes (NumPy calls it aligned).
  Array row = Array::wrap(mem.data(), DType::Float64, {1, 5}, {3, 16}, nullptr);
  CHECK(row.strides() == Shape{40, 16});
  Array copy = row.copy();
  for (int i = 0; i < 5; ++i) CHECK(copy.data_as<double>()[i] == 2 * i);
  CHECK(Array::wrap(mem.data(), DType::Float64, {0, 5}, {3, 5}, nullptr).size() == 0);
  // Two rows: the 3-byte stride steps, and is refused.
  CHECK_THROWS_AS(Array::wrap(mem.data(), DType::Float64, {2, 5}, {3, 16}, nullptr), kiln::Error);
}

TEST_CASE("byte extent covers negative strides", "[array]") {
  Array a = arange(10);
  Array r = a.slice(0, 9, -100, -2);  // 9 7 5 3 1
  const char *lo, *hi;
  r.byte_extent(lo, hi);
  CHECK(lo == a.data() + 8);
  CHECK(hi == a.data() + 80);
}

TEST_CASE("freed large buffers are reused by the next array of their size class, the newest first", "[array]") {
#if !defined(__SANITIZE_ADDRESS__)  // AddressSanitizer builds allocate every buffer afresh
  const void* first;
  const void* second;
  {
    Array a = Array::empty(DType::Float64, {1 << 20});  // 8 MiB
    Array b = Array::empty(DType::Float64, {1 << 20});
    first = a.data();
    second = b.data();
  }  // b, then a go back to the cache (destroyed in reverse order)
  Array c = Array::empty(DType::Float64, {(1 << 20) - 1000});  // same 8 MiB class
  CHECK(static_cast<const void*>(c.data()) == first);
  Array d = Array::empty(DType::Float64, {1 << 20});
  CHECK(static_cast<const void*>(d.data()) == second);
  Array e = Array::empty(DType::Float64, {1 << 21});  // another class: a fresh mapping
  CHECK(static_cast<const void*>(e.data()) != first);
  CHECK(static_cast<const void*>(e.data()) != second);
#endif
}

// Below 1 MiB the classes are eighths of a power of two: 800,000 bytes and 792,000 share
// the class of 851,968 (13 x 64 KiB); 860,000 bytes is in the next.
TEST_CASE("freed buffers from 32 KiB to 1 MiB are reused too, by class", "[array]") {
#if !defined(__SANITIZE_ADDRESS__)
  const void* first;
  const void* second;
  {
    Array a = Array::empty(DType::Float64, {100000});
    Array b = Array::empty(DType::Float32, {8192});  // 32 KiB, the smallest kept
    first = a.data();
    second = b.data();
    a.data_as<double>()[99999] = 1.5;
  }
  Array c = Array::empty(DType::Float64, {99000});
  CHECK(static_cast<const void*>(c.data()) == first);
  Array d = Array::empty(DType::Float32, {8192});
  CHECK(static_cast<const void*>(d.data()) == second);
  Array e = Array::empty(DType::Float64, {107500});  // the next class up
  CHECK(static_cast<const void*>(e.data()) != first);
  // A reused buffer is as good as a new one: zeros clears it, whole.
  c = Array();
  Array z = Array::zeros(DType::Float64, {100000});
  CHECK(static_cast<const void*>(z.data()) == first);
  CHECK(z.data_as<double>()[99999] == 0.0);
#endif
}

// Many buffers freed at once: the cache lets the oldest go past its count limit, and every
// array still gets memory of its own.
TEST_CASE("many freed buffers of many sizes: each new array still gets memory of its own", "[array]") {
  std::vector<Array> arrays;
  for (int round = 0; round < 3; ++round) {
    for (int64_t i = 0; i < 300; ++i) {
      Array a = Array::empty(DType::Int64, {4096 + 97 * i});
      a.data_as<int64_t>()[0] = i;
      a.data_as<int64_t>()[a.size() - 1] = -i;
      arrays.push_back(a);
    }
    for (int64_t i = 0; i < 300; ++i) {
      CHECK(arrays[i].data_as<int64_t>()[0] == i);
      CHECK(arrays[i].data_as<int64_t>()[arrays[i].size() - 1] == -i);
    }
    arrays.clear();
  }
}

// Shape is a vector kept in place: every edit is checked against std::vector doing the same.
TEST_CASE("Shape edits as std::vector does, and refuses more than 32 values", "[array]") {
  std::vector<int64_t> ref;
  Shape s;
  uint64_t state = 12345;
  auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull, state >> 33; };
  for (int step = 0; step < 20000; ++step) {
    const int64_t v = static_cast<int64_t>(next() % 1000) - 500;
    const size_t at = ref.empty() ? 0 : next() % (ref.size() + 1);
    switch (next() % 8) {
      case 0:
        if (ref.size() < 32) ref.push_back(v), s.push_back(v);
        break;
      case 1:
        if (ref.size() < 32) ref.insert(ref.begin() + at, v), s.insert(s.begin() + at, v);
        break;
      case 2:
        if (at < ref.size()) ref.erase(ref.begin() + at), s.erase(s.begin() + at);
        break;
      case 3: {
        const size_t n = next() % 33;
        ref.resize(n, v), s.resize(n, v);
        break;
      }
      case 4: {
        const std::vector<int64_t> more{v, v + 1, v + 2};
        if (ref.size() + 3 <= 32) ref.insert(ref.begin() + at, more.begin(), more.end()), s.insert(s.begin() + at, more.begin(), more.end());
        break;
      }
      case 5:
        if (!ref.empty()) ref.erase(ref.begin(), ref.begin() + at), s.erase(s.begin(), s.begin() + at);
        break;
      case 6: {
        Shape copy = s;  // copies and assignments carry exactly the values
        s = Shape();
        s = copy;
        break;
      }
      default:
        if (!ref.empty()) ref.pop_back(), s.pop_back();
    }
    REQUIRE(std::vector<int64_t>(s) == ref);
    REQUIRE(s == Shape(ref));
  }
  CHECK(Shape{1, 2} < Shape{1, 3});
  CHECK(Shape{1, 2} < Shape{1, 2, 0});
  CHECK(Shape(std::vector<int64_t>{4, 5}) == Shape{4, 5});
  Shape full(32, 7);
  CHECK_THROWS_WITH(full.push_back(1), Catch::Contains("at most 32 dimensions, got 33"));
  CHECK_THROWS_WITH(full.insert(full.begin(), 1), Catch::Contains("got 33"));
  CHECK(full == Shape(32, 7));  // a refused edit changes nothing
  const std::vector<int64_t> three{1, 2, 3};
  CHECK_THROWS_WITH(full.insert(full.begin() + 5, three.begin(), three.end()), Catch::Contains("got 35"));
  CHECK(full == Shape(32, 7));
  CHECK_THROWS_WITH(Shape(std::vector<int64_t>(40, 1)), Catch::Contains("at most 32 dimensions, got 40"));
  CHECK_THROWS_WITH(Array::empty(DType::Float64, std::vector<int64_t>(40, 1)), Catch::Contains("got 40"));
}
