// CUDA graphs of ordinary TorchSharp calls. TorchSharp has no stream or graph API, but its ops run on PyTorch's current
// stream: between capture_begin and capture_end the calling thread's current stream is a capturing side stream, so
// every op the managed code issues in between is recorded into the graph instead of run. Replaying the graph later
// re-runs them all with one launch; inputs and outputs are tensors at fixed addresses that the caller copies into
// and out of.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <memory>
#include <optional>

#include "abi.h"

namespace {
struct Graph {
    at::cuda::CUDAGraph graph;
    c10::DeviceIndex device;
    std::optional<c10::cuda::CUDAStream> previous;  // the thread's current stream before capture, restored after it
    std::optional<c10::cuda::CUDAStreamGuard> stream_guard;
};
}  // namespace

// Starts capturing the calling thread's work on cuda:`device`. Graphs that will never replay at the same time can share
// memory: pass an earlier graph as `share_pool_with` (capture the largest first). Returns the graph, or null on failure.
DISAGG_EXPORT void* disagg_graph_capture_begin(int device, void* share_pool_with)
{
    Graph* result = nullptr;
    disagg::guarded([&] {
        auto graph = std::make_unique<Graph>();
        graph->device = static_cast<c10::DeviceIndex>(device);
        c10::cuda::CUDAGuard device_guard(graph->device);
        auto stream = c10::cuda::getStreamFromPool(false, graph->device);
        graph->stream_guard.emplace(stream);
        at::cuda::MempoolId_t pool{0, 0};
        if (share_pool_with != nullptr) pool = static_cast<Graph*>(share_pool_with)->graph.pool();
        // Thread-local mode: other threads (another engine on another device) may keep allocating while this one captures.
        graph->graph.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
        result = graph.release();
    });
    return result;
}

// Ends the capture begun by disagg_graph_capture_begin on the same thread and restores the thread's stream. On failure
// the graph is unusable (destroy it).
DISAGG_EXPORT int disagg_graph_capture_end(void* handle)
{
    auto* g = static_cast<Graph*>(handle);
    if (g == nullptr) return disagg::fail("graph is null");
    int status = disagg::guarded([&] { g->graph.capture_end(); });
    g->stream_guard.reset();
    return status;
}

// Replays the graph on the current stream of its device.
DISAGG_EXPORT int disagg_graph_replay(void* handle)
{
    auto* g = static_cast<Graph*>(handle);
    if (g == nullptr) return disagg::fail("graph is null");
    return disagg::guarded([&] {
        c10::cuda::CUDAGuard device_guard(g->device);
        g->graph.replay();
    });
}

DISAGG_EXPORT void disagg_graph_destroy(void* handle)
{
    try {
        delete static_cast<Graph*>(handle);
    } catch (...) {
        // Destroying a graph whose capture failed may throw from its destructor's cleanup; nothing to report to.
    }
}
