// Shared-memory segments (backends/shm, kiln::SharedArray): a real second process (fork)
// sees and makes writes, mode 0600, the .npy image NumPy reads, every bad name, missing,
// foreign and truncated segments, create's refusal to overwrite, read-only attachment
// (the mapping is PROT_READ: a write faults, kiln refuses), the header page protected
// against a crashing writer, unlink, and no segment left behind.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <string>

#include "kiln/kiln.hpp"
#include "npy.hpp"
#include "shm.hpp"

using kiln::Array;
using kiln::DType;
using kiln::SharedArray;

namespace {

std::string test_name(const std::string& what) { return "kiln-test-" + std::to_string(::getpid()) + "-" + what; }

// Runs `child` in a forked process; returns its exit status, or -signal when killed.
template <class F>
int in_child(F child) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = 1;
    try {
      code = child();
    } catch (...) {
      code = 99;
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

int leftovers() {
  int n = 0;
  std::string prefix = "kiln-test-" + std::to_string(::getpid()) + "-";
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) n += std::string(e->d_name).rfind(prefix, 0) == 0;
    ::closedir(d);
  }
  return n;
}

}  // namespace

TEST_CASE("a segment made here is seen and changed by another process", "[shm]") {
  const std::string name = test_name("pair");
  {
    SharedArray a = SharedArray::create(name, DType::Float64, {1000, 3}, /*unlink_on_destroy=*/true);
    for (int64_t i = 0; i < a.size(); ++i) CHECK(a.data_as<double>()[i] == 0.0);  // zero-filled
    kiln::eval(kiln::arange(0, 3000, 1, DType::Float64), a.reshape({3000}));  // out= straight into the segment
    CHECK(reinterpret_cast<uintptr_t>(a.data()) % 4096 == 0);  // data on a page of its own
    struct stat st;
    REQUIRE(::stat(kiln::shm::path_of(name).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    int code = in_child([&] {
      SharedArray b = SharedArray::open(name);
      if (b.dtype() != DType::Float64 || b.shape() != kiln::Shape{1000, 3}) return 2;
      for (int64_t i = 0; i < b.size(); ++i)
        if (b.data_as<double>()[i] != static_cast<double>(i)) return 3;
      kiln::eval(kiln::Expr(b) * 2.0 + 1.0, b);  // a fused expression writing into the segment
      return 0;
    });
    CHECK(code == 0);
    for (int64_t i = 0; i < a.size(); ++i) REQUIRE(a.data_as<double>()[i] == 2.0 * i + 1.0);
    // The bytes are a .npy image: kiln's own reader (NumPy's rules) sees the same header.
    kiln::NpyHeader h = kiln::read_npy_header(kiln::shm::path_of(name));
    CHECK(h.dtype == DType::Float64);
    CHECK(h.shape == kiln::Shape{1000, 3});
    CHECK(h.data_offset % 64 == 0);
    Array loaded = kiln::load_npy(kiln::shm::path_of(name));
    CHECK(std::memcmp(loaded.data(), a.data(), 8 * a.size()) == 0);
  }
  CHECK(::access(kiln::shm::path_of(name).c_str(), F_OK) != 0);  // unlinked on destroy
}

TEST_CASE("segment names are checked", "[shm]") {
  for (const std::string& bad : {std::string(""), std::string("a/b"), std::string(".hidden"), std::string(".."),
                                 std::string("../etc"), std::string(201, 'x'), std::string("sp ace"),
                                 std::string("nul\0x", 5), std::string("tab\t"), std::string("ünï")}) {
    INFO("name '" << bad << "'");
    try {
      kiln::shm::create(bad, DType::Int32, {2});
      FAIL("accepted");
    } catch (const kiln::Error& e) {
      CHECK(e.status() == kiln::Status::BadArgument);
      CHECK_THAT(e.what(), Catch::Contains("invalid shared segment name"));
    }
    CHECK_THROWS_AS(kiln::shm::open(bad), kiln::Error);
    CHECK_THROWS_AS(kiln::shm::unlink(bad), kiln::Error);
  }
  CHECK_NOTHROW(kiln::shm::check_name(std::string(200, 'x')));
  CHECK_NOTHROW(kiln::shm::check_name("a.b_c-D9"));
}

TEST_CASE("create refuses an existing name unless asked to replace it", "[shm]") {
  const std::string name = test_name("exists");
  Array first = kiln::shm::create(name, DType::Int64, {4});
  first.data_as<int64_t>()[0] = 7;
  try {
    kiln::shm::create(name, DType::Int64, {4});
    FAIL("overwrote");
  } catch (const kiln::Error& e) {
    CHECK(e.status() == kiln::Status::BadArgument);
    CHECK_THAT(e.what(), Catch::Contains("already exists"));
  }
  CHECK(kiln::shm::open(name).data_as<int64_t>()[0] == 7);  // untouched
  Array second = kiln::shm::create(name, DType::Float32, {2, 2}, /*replace=*/true);
  CHECK(kiln::shm::open(name).dtype() == DType::Float32);
  CHECK(first.data_as<int64_t>()[0] == 7);  // the old mapping keeps the old bytes
  kiln::shm::unlink(name);
}

TEST_CASE("missing, foreign and truncated segments are refused", "[shm]") {
  CHECK_THROWS_WITH(kiln::shm::open(test_name("missing")), Catch::Contains("there is no such segment"));
  const std::string foreign = test_name("foreign"), truncated = test_name("truncated"), swapped = test_name("swapped");
  {
    std::ofstream(kiln::shm::path_of(foreign)) << "not an array at all, just text";
  }
  try {
    kiln::shm::open(foreign);
    FAIL("accepted");
  } catch (const kiln::Error& e) {
    CHECK(e.status() == kiln::Status::IOError);
    CHECK_THAT(e.what(), Catch::Contains("bad magic"));
  }
  {
    Array a = kiln::shm::create(truncated, DType::Float64, {1000});
  }
  REQUIRE(::truncate(kiln::shm::path_of(truncated).c_str(), 4096 + 100) == 0);  // header says 8000 data bytes
  CHECK_THROWS_AS(kiln::shm::open(truncated), kiln::Error);
  // A big-endian .npy cannot be shared as it is.
  std::string image = kiln::encode_npy(Array::zeros(DType::Float64, {2}));
  image.replace(image.find("<f8"), 3, ">f8");
  {
    std::ofstream(kiln::shm::path_of(swapped), std::ios::binary) << image;
  }
  CHECK_THROWS_WITH(kiln::shm::open(swapped), Catch::Contains("other byte order"));
  std::vector<kiln::shm::SegmentInfo> all = kiln::shm::list();
  bool listed_foreign = false;
  for (const auto& s : all) listed_foreign |= s.name == foreign && !s.npy;
  CHECK(listed_foreign);
  for (const std::string& n : {foreign, truncated, swapped}) kiln::shm::unlink(n);
}

TEST_CASE("a read-only attachment cannot be written", "[shm]") {
  const std::string name = test_name("ro");
  SharedArray a = SharedArray::create(name, DType::Int32, {16}, true);
  SharedArray r = SharedArray::open(name, /*read_only=*/true);
  CHECK_FALSE(r.writable());
  try {
    kiln::eval(kiln::Expr(r) + 1, r);
    FAIL("wrote");
  } catch (const kiln::Error& e) {
    CHECK(e.status() == kiln::Status::BadArgument);
    CHECK_THAT(e.what(), Catch::Contains("read-only"));
  }
  CHECK_THROWS_AS(kiln::random::shuffle(r, 1), kiln::Error);
  // The mapping itself is PROT_READ: a raw store faults.
  int code = in_child([&] {
    std::signal(SIGSEGV, SIG_DFL);
    r.data_as<int32_t>()[0] = 1;
    return 0;
  });
  CHECK(code == -SIGSEGV);
  CHECK(a.data_as<int32_t>()[0] == 0);
  // Reading works, and a writable attachment's writes are seen through it.
  a.data_as<int32_t>()[3] = 42;
  CHECK(r.data_as<int32_t>()[3] == 42);
}

TEST_CASE("a writer that crashes cannot damage the header", "[shm]") {
  const std::string name = test_name("crash");
  SharedArray a = SharedArray::create(name, DType::Float64, {512}, true);
  std::string before;
  {
    std::ifstream f(kiln::shm::path_of(name), std::ios::binary);
    before.assign(4096, '\0');
    f.read(before.data(), 4096);
  }
  int code = in_child([&] {
    SharedArray w = SharedArray::open(name);
    std::signal(SIGSEGV, SIG_DFL);
    *static_cast<volatile double*>(w.data_as<double>()) = 1.5;         // data: fine
    *static_cast<volatile char*>(reinterpret_cast<char*>(w.data()) - 1) = 'X';  // a stray write into the header page: faults
    return 0;
  });
  CHECK(code == -SIGSEGV);
  std::string after(4096, '\0');
  {
    std::ifstream f(kiln::shm::path_of(name), std::ios::binary);
    f.read(after.data(), 4096);
  }
  CHECK(after == before);
  CHECK(a.data_as<double>()[0] == 1.5);
  CHECK_NOTHROW(kiln::shm::open(name));
}

TEST_CASE("unlink removes the name; mappings stay valid", "[shm]") {
  const std::string name = test_name("unlink");
  SharedArray a = SharedArray::create(name, DType::Bool, {10});
  a.data_as<bool>()[2] = true;
  a.unlink();
  CHECK_THROWS_WITH(SharedArray::open(name), Catch::Contains("there is no such segment"));
  CHECK_THROWS_WITH(kiln::shm::unlink(name), Catch::Contains("there is no such segment"));
  CHECK(a.data_as<bool>()[2]);
  kiln::eval(kiln::Expr(a) | true, a);  // still an array like any other
  CHECK(a.data_as<bool>()[9]);
}

TEST_CASE("the shared-memory tests leave no segment behind", "[shm][zz]") { CHECK(leftovers() == 0); }
