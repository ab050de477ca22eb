// The decode-attention kernels (see paged_attention.cu), instantiated once per element type in paged_attention_<type>.cu
// so that the three compile in parallel.
#pragma once
#include <cfloat>

#include "launch.cuh"
#include "numeric.cuh"

namespace disagg {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kLanesPerKey = 8;                        // lanes that score one key together, a slice of its row each
constexpr int kKeysPerPass = kThreads / kLanesPerKey;  // keys a CTA scores at once
constexpr int kChunk = 256;                            // keys scored (into shared memory) before their values are summed
constexpr int kValueDepth = 4;                         // value rows a thread has in flight at once
// Fewest keys a partition gets. Fewer, longer partitions mean a shorter merge but a longer chain per CTA; on an H100,
// Qwen2.5-0.5B at batch 1 and context 512 decoded at 987 tok/s with 16 and 950 with 64 (1fdd2e9). A build-time knob
// (-DDISAGG_MIN_PARTITION_KEYS=n, a multiple of 16) for tuning runs.
#ifndef DISAGG_MIN_PARTITION_KEYS
#define DISAGG_MIN_PARTITION_KEYS 16
#endif
constexpr int kMinPartitionKeys = DISAGG_MIN_PARTITION_KEYS;
static_assert(kMinPartitionKeys % kKeysPerPass == 0, "partitions hold whole passes of keys");

// Threads summing value rows side by side: a row's 16-byte slices (dim / vector) times this many shares of the keys.
__host__ __device__ constexpr int value_shares(int dim, int vector) { return kThreads / (dim / vector); }

// Shared memory of attention_partition_kernel, in floats, for `vector` elements per 16 bytes (the layout is in the kernel).
__host__ __device__ constexpr int partition_shared_floats(int groups, int dim, int vector)
{
    return groups * dim + value_shares(dim, vector) * groups * dim + groups * kChunk + groups * 3 + kChunk;
}

// The workspace of a launch with partitions > 1: each (sequence, query head, partition) row's weighted sums of values,
// [batch, heads, partitions, dim], then its softmax statistics (running max, sum of weights) [batch, heads, partitions, 2].
__device__ __forceinline__ float* partition_sums(const PagedAttention& a, int b, int head, int part)
{
    return a.workspace + ((static_cast<int64_t>(b) * a.heads + head) * a.partitions + part) * a.dim;
}
__device__ __forceinline__ float2* partition_stats(const PagedAttention& a, int b, int head, int part)
{
    float2* all = reinterpret_cast<float2*>(a.workspace + static_cast<int64_t>(a.batch) * a.heads * a.partitions * a.dim);
    return all + (static_cast<int64_t>(b) * a.heads + head) * a.partitions + part;
}

// The cache slots of keys [chunk, chunk + n) of sequence b, into shared memory.
__device__ __forceinline__ void lookup_slots(const PagedAttention& a, int b, int chunk, int n, int* slots)
{
    const int32_t* table = a.block_tables + static_cast<int64_t>(b) * a.max_blocks;
    for (int i = threadIdx.x; i < n; i += kThreads) {
        const int key = chunk + i;
        slots[i] = __ldg(table + key / a.block_size) * a.block_size + key % a.block_size;
    }
}

// GROUPS: most query heads per kv head this instantiation handles; MAXDIM: the largest head dim it handles.
//
// Every thread works at every stage, so that a partition of a few dozen keys costs a few memory round trips rather than
// one warp's long chain of dependent loads: per chunk of keys, the CTA looks up their slots; scores 16 keys at a time
// (8 lanes per key, each lane a 16-byte slice of the key row against each query head of the group, summed by
// shuffles); turns the chunk's scores into softmax weights (a warp per head, keeping a running max and sum); then sums
// the weighted value rows (each thread a 16-byte slice of the row over a share of the keys, for every head). At the end
// the shares' sums are added up in a fixed order through shared memory: float atomics on shared memory are a
// compare-and-swap loop, and with 8-16 threads on each address they cost ~50 us per call.
//
// Key and value rows are requested in batches (kDepth passes of keys, kValueDepth value rows a thread) before any is
// used, so a partition of 64 keys or fewer waits on about one round trip for each; loops over heads are not unrolled:
// the code stays a few KB, as most of it runs once per call.
//
// This is one partition's part: keys [begin, end) of sequence b for the query heads of kv head kvh, the first chunk's
// slots already looked up. With one partition it writes the output; with more, its sums and softmax statistics go to the
// workspace for merge_partitions.
template <typename T, int GROUPS, int MAXDIM>
__device__ void attend(const PagedAttention& a, int b, int kvh, int part, int begin, int end, float* shared)
{
    constexpr int kVector = 16 / sizeof(T);
    constexpr int kSlice = (MAXDIM / kVector + kLanesPerKey - 1) / kLanesPerKey;  // 16-byte vectors per lane of a key row
    constexpr int kDepth = kSlice >= 4 ? 1 : 4 / kSlice;  // passes whose key loads are in flight together (<= 4 vectors a lane)
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int groups = a.heads / a.kv_heads;
    const int dim = a.dim;
    const int slices = dim / kVector, shares = value_shares(dim, kVector);
    float* q = shared;                           // [GROUPS][dim], scaled
    float* partial = q + GROUPS * dim;           // [shares][GROUPS][dim]: each share's weighted sum of values
    float* scores = partial + shares * GROUPS * dim;  // [GROUPS][kChunk]: scores, then softmax weights
    float* stats = scores + GROUPS * kChunk;     // [GROUPS][3]: running max, running sum, this chunk's rescale factor
    int* slots = reinterpret_cast<int*>(stats + GROUPS * 3);  // [kChunk]: the chunk's cache slots (the layout's end)

    const T* q_row = static_cast<const T*>(a.q) + b * a.q_stride + kvh * groups * dim;
    for (int i = threadIdx.x; i < groups * dim; i += kThreads) q[i] = Num<T>::load(q_row[i]) * a.scale;
    if (threadIdx.x < GROUPS) {
        stats[threadIdx.x * 3] = -FLT_MAX;
        stats[threadIdx.x * 3 + 1] = 0.f;
    }

    const T* k_base = static_cast<const T*>(a.k_cache) + kvh * dim;
    const T* v_base = static_cast<const T*>(a.v_cache) + kvh * dim;
    const int64_t slot_stride = static_cast<int64_t>(a.kv_heads) * dim;

    // Scoring: key group kg (8 lanes) takes key kg of each pass; lane kl of it the 16-byte vectors kl, kl + 8, ...
    const int kg = threadIdx.x / kLanesPerKey, kl = threadIdx.x % kLanesPerKey;
    // Values: thread = (key share vk, slice); slices * shares <= kThreads, the rest of the threads idle there.
    const int slice = threadIdx.x % slices, vk = threadIdx.x / slices;
    float acc[GROUPS][kVector];
#pragma unroll
    for (int g = 0; g < GROUPS; g++)
#pragma unroll
        for (int e = 0; e < kVector; e++) acc[g][e] = 0.f;

    auto key_slice = [&](int i, uint4 (&out)[kSlice]) {  // this lane's vectors of key i of the chunk (zeros past the row)
        const T* row = k_base + static_cast<int64_t>(slots[i]) * slot_stride;
#pragma unroll
        for (int v = 0; v < kSlice; v++) {
            const int d = (kl + v * kLanesPerKey) * kVector;
            out[v] = d < dim ? __ldg(reinterpret_cast<const uint4*>(row + d)) : make_uint4(0, 0, 0, 0);
        }
    };

    for (int chunk = begin; chunk < end; chunk += kChunk) {
        const int n = min(kChunk, end - chunk);
        if (chunk != begin) lookup_slots(a, b, chunk, n, slots);
        __syncthreads();  // slots (and, the first time, q and stats) are ready

        // Passes of keys in batches of kDepth: each lane requests all of a batch's key vectors, then scores them.
#pragma unroll 1
        for (int batch = 0; batch < n; batch += kDepth * kKeysPerPass) {
            uint4 raw[kDepth][kSlice];
#pragma unroll
            for (int p = 0; p < kDepth; p++) {
                const int i = batch + p * kKeysPerPass + kg;
                if (i < n) key_slice(i, raw[p]);
            }
#pragma unroll
            for (int p = 0; p < kDepth; p++) {
                if (batch + p * kKeysPerPass >= n) break;  // the same for the whole CTA: the shuffles below see every lane
                const int i = batch + p * kKeysPerPass + kg;
                const bool valid = i < n;
                float k[kSlice * kVector];
#pragma unroll
                for (int v = 0; v < kSlice; v++) {
                    const T* parts = reinterpret_cast<const T*>(&raw[p][v]);
#pragma unroll
                    for (int e = 0; e < kVector; e++) k[v * kVector + e] = valid ? Num<T>::load(parts[e]) : 0.f;
                }
#pragma unroll 1
                for (int g = 0; g < groups; g++) {
                    float s = 0.f;
#pragma unroll
                    for (int v = 0; v < kSlice; v++) {
                        const int d = (kl + v * kLanesPerKey) * kVector;
                        if (d >= dim) continue;
#pragma unroll
                        for (int e = 0; e < kVector; e += 4) {
                            const float4 qv = *reinterpret_cast<const float4*>(q + g * dim + d + e);
                            s += qv.x * k[v * kVector + e] + qv.y * k[v * kVector + e + 1] + qv.z * k[v * kVector + e + 2] + qv.w * k[v * kVector + e + 3];
                        }
                    }
#pragma unroll
                    for (int o = kLanesPerKey / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
                    if (valid && kl == 0) scores[g * kChunk + i] = s;
                }
            }
        }
        __syncthreads();

        // Softmax weights of the chunk, a warp per head; the running max and sum carry over from earlier chunks.
        for (int g = warp; g < groups; g += kWarps) {
            float* w = scores + g * kChunk;
            float chunk_max = -FLT_MAX;
            for (int i = lane; i < n; i += 32) chunk_max = fmaxf(chunk_max, w[i]);
            chunk_max = warp_max(chunk_max);
            const float old_max = stats[g * 3];
            const float next_max = fmaxf(old_max, chunk_max);
            float sum = 0.f;
            for (int i = lane; i < n; i += 32) {
                const float p = __expf(w[i] - next_max);
                w[i] = p;
                sum += p;
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                const float rescale = __expf(old_max - next_max);
                stats[g * 3] = next_max;
                stats[g * 3 + 1] = stats[g * 3 + 1] * rescale + sum;
                stats[g * 3 + 2] = rescale;
            }
        }
        __syncthreads();

        if (vk < shares) {
#pragma unroll
            for (int g = 0; g < GROUPS; g++) {
                const float rescale = g < groups ? stats[g * 3 + 2] : 0.f;
#pragma unroll
                for (int e = 0; e < kVector; e++) acc[g][e] *= rescale;
            }
            const T* v_slice = v_base + slice * kVector;
            // Keys vk, vk + shares, ... in batches of kValueDepth rows requested together.
#pragma unroll 1
            for (int first = vk; first < n; first += shares * kValueDepth) {
                uint4 rows[kValueDepth];
#pragma unroll
                for (int u = 0; u < kValueDepth; u++) {
                    const int i = first + u * shares;
                    rows[u] = i < n ? __ldg(reinterpret_cast<const uint4*>(v_slice + static_cast<int64_t>(slots[i]) * slot_stride)) : make_uint4(0, 0, 0, 0);
                }
#pragma unroll
                for (int u = 0; u < kValueDepth; u++) {
                    const int i = first + u * shares;
                    if (i >= n) break;
                    const T* parts = reinterpret_cast<const T*>(&rows[u]);
                    float v[kVector];
#pragma unroll
                    for (int e = 0; e < kVector; e++) v[e] = Num<T>::load(parts[e]);
#pragma unroll
                    for (int g = 0; g < GROUPS; g++) {
                        if (g >= groups) break;
                        const float p = scores[g * kChunk + i];
#pragma unroll
                        for (int e = 0; e < kVector; e++) acc[g][e] += p * v[e];
                    }
                }
            }
        }
        __syncthreads();  // the next chunk overwrites slots and scores
    }

    if (vk < shares) {
#pragma unroll
        for (int g = 0; g < GROUPS; g++) {
            if (g >= groups) break;
            float4* to = reinterpret_cast<float4*>(partial + (vk * GROUPS + g) * dim + slice * kVector);
#pragma unroll
            for (int e = 0; e < kVector; e += 4) to[e / 4] = make_float4(acc[g][e], acc[g][e + 1], acc[g][e + 2], acc[g][e + 3]);
        }
    }
    __syncthreads();

    for (int i = threadIdx.x; i < groups * dim; i += kThreads) {
        const int g = i / dim, d = i - g * dim, head = kvh * groups + g;
        float sum = 0.f;
        for (int s = 0; s < shares; s++) sum += partial[(s * GROUPS + g) * dim + d];
        if (a.partitions == 1) {
            const float total = stats[g * 3 + 1];
            static_cast<T*>(a.out)[(static_cast<int64_t>(b) * a.heads + head) * dim + d] = Num<T>::round(total > 0.f ? sum / total : 0.f);
        } else {
            partition_sums(a, b, head, part)[d] = sum;
        }
    }
    if (a.partitions > 1 && threadIdx.x < groups)
        *partition_stats(a, b, kvh * groups + threadIdx.x, part) = make_float2(stats[threadIdx.x * 3], stats[threadIdx.x * 3 + 1]);
}

// Counts this CTA's partition of (sequence b, kv head kvh) as done. True in the CTA that finishes last: it alone then
// sees every partition's workspace, merges them, and leaves the counter at zero for the next launch (or graph replay).
__device__ bool last_partition_done(const PagedAttention& a, int b, int kvh)
{
    __shared__ bool last;
    __threadfence();  // this CTA's workspace writes reach L2 before its count does
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned* counter = a.counters + b * a.kv_heads + kvh;
        last = atomicAdd(counter, 1u) == static_cast<unsigned>(a.partitions - 1);
        if (last) *counter = 0;  // every other partition has counted already
    }
    __syncthreads();
    return last;
}

// The output of the group's query heads from the first `used` partitions' workspace rows (those that saw keys: always a
// prefix, as attention_kernel fills partitions in order): sum_p w_p * sums_p, w_p = e^(m_p - M) / sum_p' l_p' e^(m_p' - M).
// First a warp per head turns the partitions' statistics into the weights w_p (in shared memory, which the partition's
// own work no longer needs); then each thread sums 4 adjacent outputs over the partitions with many loads in flight at
// once. The statistics are read once per head, not once per output, and the sums in 16-byte loads: the merge is a few
// round trips to L2 (__ldcg: other CTAs wrote the workspace during this launch).
template <typename T>
__device__ void merge_partitions(const PagedAttention& a, int b, int kvh, int used, float* shared)
{
    constexpr int kPerLane = kMaxAttentionPartitions / 32;
    const int groups = a.heads / a.kv_heads, dim = a.dim, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* weights = shared;  // [groups][used] (launch checks that it fits)
    for (int g = warp; g < groups; g += kWarps) {
        const float2* stats = partition_stats(a, b, kvh * groups + g, 0);
        float2 ml[kPerLane];
        float top = -FLT_MAX;
#pragma unroll
        for (int j = 0; j < kPerLane; j++) {
            const int p = lane + 32 * j;
            ml[j] = p < used ? __ldcg(stats + p) : make_float2(-FLT_MAX, 0.f);
            top = fmaxf(top, ml[j].x);
        }
        top = warp_max(top);
        float total = 0.f;
#pragma unroll
        for (int j = 0; j < kPerLane; j++) {
            ml[j].x = lane + 32 * j < used ? __expf(ml[j].x - top) : 0.f;
            total += ml[j].y * ml[j].x;
        }
        total = warp_sum(total);
        const float inverse = total > 0.f ? 1.f / total : 0.f;
#pragma unroll
        for (int j = 0; j < kPerLane; j++)
            if (lane + 32 * j < used) weights[g * used + lane + 32 * j] = ml[j].x * inverse;
    }
    __syncthreads();

    T* out = static_cast<T*>(a.out) + (static_cast<int64_t>(b) * a.heads + kvh * groups) * dim;
    for (int i = threadIdx.x; i < groups * dim / 4; i += kThreads) {  // dim is a multiple of 8
        const int g = 4 * i / dim, d = 4 * i - g * dim;
        const float* sums = partition_sums(a, b, kvh * groups + g, 0) + d;
        const float* w = weights + g * used;
        float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 16
        for (int p = 0; p < used; p++) {
            const float4 v = __ldcg(reinterpret_cast<const float4*>(sums + static_cast<int64_t>(p) * dim));
            const float wp = w[p];
            s.x += wp * v.x;
            s.y += wp * v.y;
            s.z += wp * v.z;
            s.w += wp * v.w;
        }
        out[g * dim + d] = Num<T>::round(s.x);
        out[g * dim + d + 1] = Num<T>::round(s.y);
        out[g * dim + d + 2] = Num<T>::round(s.z);
        out[g * dim + d + 3] = Num<T>::round(s.w);
    }
}

// A CTA per (sequence, kv head, partition of the context): its partition's keys (attend), then, in the CTA that
// finishes a (sequence, kv head) last, the merge of all its partitions. Merging in the last CTA instead of a second
// kernel saves a launch per layer and the drain between the two.
template <typename T, int GROUPS, int MAXDIM>
__global__ void __launch_bounds__(kThreads) attention_kernel(PagedAttention a)
{
    const int b = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    const int context = a.context_lens[b];
    const int first = a.window > 0 ? max(0, context - a.window) : 0;
    // Each partition gets whole passes of keys, at least kMinPartitionKeys; with a short context the last partitions get none.
    const int live = context - first;
    const int size = live == 0 ? 0 : max(kMinPartitionKeys, ((live + a.partitions - 1) / a.partitions + kKeysPerPass - 1) / kKeysPerPass * kKeysPerPass);
    const int begin = first + part * size;
    const int end = min(context, begin + size);
    extern __shared__ float shared[];
    // The context lengths and block tables are uploaded before a step's first kernel, so they may be read before the wait
    // (launch.cuh): the first chunk's slots are looked up while the kernel before this one finishes.
    int* slots = reinterpret_cast<int*>(shared + partition_shared_floats(GROUPS, a.dim, 16 / sizeof(T)) - kChunk);
    if (begin < end) lookup_slots(a, b, begin, min(kChunk, end - begin), slots);
    wait_for_prior_kernel();  // q and the newest cache rows are the previous kernel's output
    allow_next_kernel();
    if (a.partitions == 1 || begin < end) attend<T, GROUPS, MAXDIM>(a, b, kvh, part, begin, end, shared);
    if (a.partitions > 1 && last_partition_done(a, b, kvh)) {
        const int used = size > 0 ? min(a.partitions, (live + size - 1) / size) : 0;
        merge_partitions<T>(a, b, kvh, used, shared);
    }
}

template <typename T, int GROUPS, int MAXDIM>
cudaError_t launch(const PagedAttention& a, cudaStream_t stream)
{
    const int floats = partition_shared_floats(GROUPS, a.dim, 16 / sizeof(T));
    if (GROUPS * a.partitions > floats) return cudaErrorInvalidValue;  // the merge's weights (never so for dim >= 8)
    const size_t shared = static_cast<size_t>(floats) * sizeof(float);
    auto kernel = attention_kernel<T, GROUPS, MAXDIM>;
    if (shared > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
        if (e != cudaSuccess) return e;
    }
    return launch_kernel(kernel, dim3(a.batch, a.kv_heads, a.partitions), kThreads, shared, stream, a);
}

template <typename T, int GROUPS>
cudaError_t launch_dim(const PagedAttention& a, cudaStream_t stream)
{
    if (a.dim <= 32) return launch<T, GROUPS, 32>(a, stream);
    if (a.dim <= 64) return launch<T, GROUPS, 64>(a, stream);
    if (a.dim <= 128) return launch<T, GROUPS, 128>(a, stream);
    return launch<T, GROUPS, 256>(a, stream);
}

template <typename T>
cudaError_t launch_groups(const PagedAttention& a, cudaStream_t stream)
{
    const int groups = a.heads / a.kv_heads;
    if (groups == 1) return launch_dim<T, 1>(a, stream);
    if (groups <= 2) return launch_dim<T, 2>(a, stream);
    if (groups <= 4) return launch_dim<T, 4>(a, stream);
    if (groups <= 8) return launch_dim<T, 8>(a, stream);
    return launch_dim<T, 16>(a, stream);
}

}  // namespace
}  // namespace disagg
