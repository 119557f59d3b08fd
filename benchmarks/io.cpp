// `kiln bench --io`: .npy loads and saves against the machine's own file reads and, in the
// same run, NumPy's np.save / np.load (benchmarks/io_numpy.py under /usr/bin/python3).
//
//   one big file (--mb, default 800): save, load into memory, mmap load + sum; against
//     raw read() of the same file into a reused 1 MiB buffer (what `cat file > /dev/null`
//     does) and into one big buffer;
//   many small files (--files 1000 of --kb 8): load_npy_many / save_npy_many against raw
//     open + read + close of the same files on one thread.
// The page cache is warm (files were just written), as in the reference figures.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "bench.hpp"
#include "npy.hpp"
#include "runtime.hpp"

namespace kiln::cli {

namespace {

// Sequential read() of a whole file into `buf` (advancing through it when `advance`).
uint64_t raw_read(const std::string& path, char* buf, size_t buf_size, bool advance) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(Status::IOError, path + ": cannot open");
  uint64_t total = 0;
  for (;;) {
    ssize_t r = ::read(fd, advance ? buf + total : buf, advance ? buf_size - total : buf_size);
    if (r <= 0) break;
    total += static_cast<uint64_t>(r);
  }
  ::close(fd);
  return total;
}

}  // namespace

int run_io_bench(int argc, char** argv) {
  const int64_t mb = std::max<int64_t>(arg_int(argc, argv, "--mb", 800), 1);
  const int files = static_cast<int>(std::max<int64_t>(arg_int(argc, argv, "--files", 1000), 1));
  const int64_t kb = std::max<int64_t>(arg_int(argc, argv, "--kb", 8), 1);
  const int reps = static_cast<int>(std::max<int64_t>(arg_int(argc, argv, "--reps", 5), 1));
  std::string script = "benchmarks/io_numpy.py", dir = "/tmp";
  for (int i = 0; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--numpy") script = argv[i + 1];
    if (std::string(argv[i]) == "--dir") dir = argv[i + 1];
  }
  char tmpl[4096];
  std::snprintf(tmpl, sizeof tmpl, "%s/kiln_io_bench_XXXXXX", dir.c_str());
  if (!::mkdtemp(tmpl)) throw Error(Status::IOError, dir + ": cannot make a temporary folder");
  const std::string root = tmpl, big = root + "/big.npy", small_dir = root + "/small";
  std::filesystem::create_directory(small_dir);

  const int64_t n = mb * 1000000 / 8;
  Array a = random_array<double>(n, 7, -1, 1);
  std::vector<std::string> paths;
  std::vector<Array> smalls;
  for (int i = 0; i < files; ++i) {
    paths.push_back(small_dir + "/a" + std::to_string(i) + ".npy");
    smalls.push_back(random_array<double>(kb * 1024 / 8, 100 + i, -1, 1));
  }
  save_npy(big, a);
  save_npy_many(paths, smalls);
  const double big_bytes = static_cast<double>(std::filesystem::file_size(big));
  std::vector<char> chunk(1 << 20), whole(static_cast<size_t>(big_bytes));
  std::vector<char> small_buf(1 << 20);
  const int all = hardware_threads();

  const double small_bytes = static_cast<double>(files) * static_cast<double>(std::filesystem::file_size(paths[0]));
  std::vector<std::string> names;
  std::vector<double> bytes;  // what each row moves, for its GB/s
  std::vector<std::function<void()>> fs;
  auto add_sized = [&](std::string name, double moved, std::function<void()> f) {
    names.push_back(std::move(name));
    bytes.push_back(moved);
    fs.push_back(std::move(f));
  };
  auto add = [&](std::string name, std::function<void()> f) { add_sized(std::move(name), big_bytes, std::move(f)); };
  auto add_many = [&](std::string name, std::function<void()> f) { add_sized(std::move(name), small_bytes, std::move(f)); };
  for (int t : {1, all}) {
    std::string th = " (" + std::to_string(t) + "T)";
    add("kiln save_npy" + th, [&, t] { set_num_threads(t); save_npy(big, a); });
    add("kiln load_npy" + th, [&, t] { set_num_threads(t); load_npy(big); });
    if (all == 1) break;
  }
  add("kiln save_npy durable (fsync)", [&] { set_num_threads(0); save_npy(big, a, true); });
  add("kiln load_npy mmap + sum", [&] {
    set_num_threads(0);
    Array m = load_npy(big, NpyLoad::Mmap);
    eval("sum(m)", {{"m", m}});
  });
  add("raw read, 1 MiB buffer (cat)", [&] { raw_read(big, chunk.data(), chunk.size(), false); });
  add("raw read into one buffer", [&] { raw_read(big, whole.data(), whole.size(), true); });
  add_many("kiln load_npy_many", [&] { set_num_threads(0); load_npy_many(paths); });
  add_many("kiln save_npy_many", [&] { save_npy_many(paths, smalls); });
  add_many("raw open+read+close loop", [&] {
    for (const std::string& p : paths) raw_read(p, small_buf.data(), small_buf.size(), false);
  });
  std::vector<Stats> st = measure_interleaved(reps, fs);
  set_num_threads(0);
  std::map<std::string, double> np =
      run_numpy_script(script, {big, small_dir, std::to_string(files), std::to_string(reps)});

  std::printf("kiln bench --io: %lld MB file, %d files of %lld KB, medians of %d, %d hardware threads, warm page cache\n",
              static_cast<long long>(mb), files, static_cast<long long>(kb), reps, all);
  std::printf("%-34s %10s %10s %10s %8s\n", "what", "median ms", "min ms", "max ms", "GB/s");
  std::map<std::string, double> med;
  for (size_t i = 0; i < st.size(); ++i) {
    med[names[i]] = st[i].median;
    std::printf("%-34s %10.2f %10.2f %10.2f %8.2f\n", names[i].c_str(), st[i].median * 1e3, st[i].min * 1e3,
                st[i].max * 1e3, bytes[i] / st[i].median / 1e9);
  }
  // io_numpy.py's rows: the big file's, then the small files' loops.
  const std::map<std::string, double> numpy_bytes = {{"save", big_bytes},       {"load", big_bytes},
                                                     {"mmap_sum", big_bytes},   {"load_loop", small_bytes},
                                                     {"load_pool", small_bytes}, {"save_loop", small_bytes}};
  for (const auto& [name, secs] : np) {
    auto it = numpy_bytes.find(name);
    double moved = it == numpy_bytes.end() ? 0 : it->second;
    std::printf("%-34s %10.2f %10s %10s %8.2f\n", ("numpy " + name).c_str(), secs * 1e3, "", "", moved / secs / 1e9);
  }
  auto ratio = [&](const char* what, const std::string& theirs, const std::string& ours) {
    auto t = np.count(theirs) ? np[theirs] : med.count(theirs) ? med[theirs] : 0;
    if (t > 0 && med.count(ours)) std::printf("  %-50s %.2fx\n", what, t / med[ours]);
  };
  std::string best = " (" + std::to_string(all) + "T)";
  std::printf("ratios (time of the reference over kiln's; above 1, kiln is faster):\n");
  ratio("np.save / kiln save_npy", "save", "kiln save_npy" + best);
  ratio("np.load / kiln load_npy", "load", "kiln load_npy" + best);
  ratio("kiln save_npy / kiln save_npy durable", "kiln save_npy" + best, "kiln save_npy durable (fsync)");
  ratio("raw read into one buffer / kiln load_npy", "raw read into one buffer", "kiln load_npy" + best);
  ratio("cat (1 MiB reads) / kiln load_npy", "raw read, 1 MiB buffer (cat)", "kiln load_npy" + best);
  ratio("np.load(mmap_mode='r').sum() / kiln mmap + sum", "mmap_sum", "kiln load_npy mmap + sum");
  ratio("numpy np.load loop / kiln load_npy_many", "load_loop", "kiln load_npy_many");
  ratio("numpy np.load on a thread pool / kiln load_npy_many", "load_pool", "kiln load_npy_many");
  ratio("raw open+read+close / kiln load_npy_many", "raw open+read+close loop", "kiln load_npy_many");
  ratio("numpy np.save loop / kiln save_npy_many", "save_loop", "kiln save_npy_many");
  if (np.empty()) std::printf("  (no NumPy figures: %s not found or /usr/bin/python3 lacks numpy)\n", script.c_str());
  std::filesystem::remove_all(root);
  return 0;
}

}  // namespace kiln::cli
