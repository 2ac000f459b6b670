// A minimal ExecuTorch executor_runner for the emulated aarch64 board (tests/arm64_board.py builds it).
//
// Written for flopgap's tests, not taken from ExecuTorch: it takes the flags flopgap's executor_runner backend
// passes to ExecuTorch's own examples/portable/executor_runner (--model_path, --num_executions, --etdump_path,
// --cpu_threads; an unknown flag is an error, as gflags makes it), sets every input to ones as that tool does,
// runs the program's first method with ExecuTorch's runtime, XNNPACK delegate and optimized kernels from the
// aarch64 executorch wheel (libexecutorch*.so: no torch, no Python), writes the ETDump its ETDumpGen recorded and
// prints the tool's summary line in ExecuTorch's log format.

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <executorch/devtools/etdump/etdump_flatcc.h>
#include <executorch/extension/data_loader/file_data_loader.h>
#include <executorch/runtime/executor/method.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/runtime.h>

// libexecutorch_threadpool.so's pool; the wheel ships no header for it.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

using executorch::aten::ScalarType;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::HierarchicalAllocator;
using executorch::runtime::MemoryAllocator;
using executorch::runtime::MemoryManager;
using executorch::runtime::Span;

static uint8_t method_pool[16 * 1024 * 1024];
static uint8_t temp_pool[4 * 1024 * 1024];

static size_t element_size(ScalarType type) {
  switch (type) {
    case ScalarType::Byte:
    case ScalarType::Char:
    case ScalarType::Bool:
      return 1;
    case ScalarType::Half:
      return 2;
    case ScalarType::Int:
    case ScalarType::Float:
      return 4;
    case ScalarType::Long:
      return 8;
    default:
      return 0;
  }
}

static void fill_ones(void* data, ScalarType type, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    switch (type) {
      case ScalarType::Float: static_cast<float*>(data)[i] = 1.0f; break;
      case ScalarType::Int: static_cast<int32_t*>(data)[i] = 1; break;
      case ScalarType::Long: static_cast<int64_t*>(data)[i] = 1; break;
      case ScalarType::Half: static_cast<uint16_t*>(data)[i] = 0x3c00; break;
      default: static_cast<uint8_t*>(data)[i] = 1; break;
    }
  }
}

int main(int argc, char** argv) {
  std::string model_path = "model.pte", etdump_path = "model.etdump";
  long executions = 1, threads = -1;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    const char* eq = std::strchr(arg, '=');
    std::string name = std::string(arg).substr(0, eq ? eq - arg : std::strlen(arg));
    while (!name.empty() && name[0] == '-') name.erase(0, 1);
    if (!eq) {
      std::fprintf(stderr, "ERROR: unknown command line flag '%s'\n", name.c_str());
      return 1;
    }
    if (name == "model_path") model_path = eq + 1;
    else if (name == "etdump_path") etdump_path = eq + 1;
    else if (name == "num_executions") executions = std::strtol(eq + 1, nullptr, 10);
    else if (name == "cpu_threads") threads = std::strtol(eq + 1, nullptr, 10);
    else {
      std::fprintf(stderr, "ERROR: unknown command line flag '%s'\n", name.c_str());
      return 1;
    }
  }
  executorch::runtime::runtime_init();
  if (threads > 0) {
    executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(threads);
  }
  auto loader = executorch::extension::FileDataLoader::from(model_path.c_str());
  if (!loader.ok()) {
    std::fprintf(stderr, "E executorch:executor_runner_min.cpp] FileDataLoader::from() failed: %s\n", model_path.c_str());
    return 1;
  }
  auto program = executorch::runtime::Program::load(&loader.get());
  if (!program.ok()) {
    std::fprintf(stderr, "E executorch:executor_runner_min.cpp] Failed to parse model file %s\n", model_path.c_str());
    return 1;
  }
  const char* method_name = *program->get_method_name(0);
  auto meta = program->method_meta(method_name);
  std::vector<std::unique_ptr<uint8_t[]>> planned;
  std::vector<Span<uint8_t>> spans;
  for (size_t id = 0; id < meta->num_memory_planned_buffers(); ++id) {
    size_t size = static_cast<size_t>(meta->memory_planned_buffer_size(id).get());
    planned.emplace_back(new uint8_t[size]);
    spans.push_back({planned.back().get(), size});
  }
  MemoryAllocator method_allocator(sizeof(method_pool), method_pool);
  MemoryAllocator temp_allocator(sizeof(temp_pool), temp_pool);
  HierarchicalAllocator planned_memory({spans.data(), spans.size()});
  MemoryManager memory(&method_allocator, &planned_memory, &temp_allocator);
  executorch::etdump::ETDumpGen tracer;
  auto method = program->load_method(method_name, &memory, &tracer);
  if (!method.ok()) {
    std::fprintf(stderr, "E executorch:executor_runner_min.cpp] Loading of method %s failed with status 0x%" PRIx32 "\n",
                 method_name, static_cast<uint32_t>(method.error()));
    return 1;
  }
  // Inputs of ones, made once: their buffers must outlive every execute().
  std::vector<std::vector<int32_t>> sizes;
  std::vector<std::vector<uint8_t>> orders;
  std::vector<std::unique_ptr<uint8_t[]>> data;
  std::vector<std::unique_ptr<executorch::aten::TensorImpl>> impls;
  for (size_t i = 0; i < meta->num_inputs(); ++i) {
    auto info = meta->input_tensor_meta(i);
    if (!info.ok()) continue;  // not a tensor input
    sizes.emplace_back(info->sizes().begin(), info->sizes().end());
    orders.emplace_back(info->dim_order().begin(), info->dim_order().end());
    size_t n = 1;
    for (int32_t s : sizes.back()) n *= static_cast<size_t>(s);
    size_t bytes = n * element_size(info->scalar_type());
    data.emplace_back(new uint8_t[bytes ? bytes : 1]);
    fill_ones(data.back().get(), info->scalar_type(), n);
    impls.emplace_back(new executorch::aten::TensorImpl(
        info->scalar_type(), static_cast<ssize_t>(sizes.back().size()), sizes.back().data(), data.back().get(),
        orders.back().data()));
    Error status = method->set_input(EValue(executorch::aten::Tensor(impls.back().get())), i);
    if (status != Error::Ok) {
      std::fprintf(stderr, "E executorch:executor_runner_min.cpp] set_input %zu failed: 0x%" PRIx32 "\n", i,
                   static_cast<uint32_t>(status));
      return 1;
    }
  }
  double spent_ms = 0;
  for (long i = 0; i < executions; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Error status = method->execute();
    spent_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (status != Error::Ok) {
      std::fprintf(stderr, "E executorch:executor_runner_min.cpp] Execution of method %s failed with status 0x%" PRIx32
                   "\n", method_name, static_cast<uint32_t>(status));
      return 1;
    }
  }
  std::fprintf(stderr, "I executorch:executor_runner_min.cpp] Model executed successfully %ld time(s) in %f ms.\n",
               executions, spent_ms);
  auto dump = tracer.get_etdump_data();
  FILE* out = std::fopen(etdump_path.c_str(), "wb");
  if (dump.buf == nullptr || out == nullptr) {
    std::fprintf(stderr, "E executorch:executor_runner_min.cpp] No ETDump written to '%s'\n", etdump_path.c_str());
    return 1;
  }
  std::fwrite(dump.buf, 1, dump.size, out);
  std::fclose(out);
  std::free(dump.buf);
  return 0;
}
