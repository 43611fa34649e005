// CUDA kernel: out = base + scale * eps on device pointers, eps the Philox4x32-10 Gaussian stream of one key, with the
// same header (philox_noise.h) and so the same bits as the CPU kernel and the torch fallback. One thread per counter
// (4 elements), grid-stride, launched on the caller's stream (torch's current stream).
#include <cuda_runtime.h>

#include "philox_noise.h"

#define ES_NOISE_STREAM_VERSION 1
#define ES_THREADS 256
#define ES_MAX_DEVICES 64

template <bool kBase, bool kVec4>
__global__ void es_axpy_normal_kernel(float* out, const float* base, int64_t n, uint32_t k0, uint32_t k1,
                                      float scale) {
  const int64_t counters = (n + 3) / 4;
  for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < counters; c += (int64_t)gridDim.x * blockDim.x) {
    float z[4];
    es_normal4((uint64_t)c, k0, k1, z[0], z[1], z[2], z[3]);
    const int64_t i = 4 * c;
    if (kVec4 && i + 3 < n) {  // 16-byte aligned (checked by the launcher): one vector load and store
      float4 v = make_float4(__fmul_rn(scale, z[0]), __fmul_rn(scale, z[1]), __fmul_rn(scale, z[2]),
                             __fmul_rn(scale, z[3]));
      if (kBase) {
        const float4 b = *reinterpret_cast<const float4*>(base + i);
        v.x = __fadd_rn(b.x, v.x);
        v.y = __fadd_rn(b.y, v.y);
        v.z = __fadd_rn(b.z, v.z);
        v.w = __fadd_rn(b.w, v.w);
      }
      *reinterpret_cast<float4*>(out + i) = v;
    } else {
      for (int w = 0; w < 4 && i + w < n; ++w) {
        const float e = __fmul_rn(scale, z[w]);
        out[i + w] = kBase ? __fadd_rn(base[i + w], e) : e;
      }
    }
  }
}

template <bool kBase>
static void es_launch(float* out, const float* base, int64_t n, uint32_t k0, uint32_t k1, float scale, int blocks,
                      cudaStream_t stream) {
  const bool vec4 = ((uintptr_t)out % 16 == 0) && (!kBase || (uintptr_t)base % 16 == 0);
  if (vec4)
    es_axpy_normal_kernel<kBase, true><<<blocks, ES_THREADS, 0, stream>>>(out, base, n, k0, k1, scale);
  else
    es_axpy_normal_kernel<kBase, false><<<blocks, ES_THREADS, 0, stream>>>(out, base, n, k0, k1, scale);
}

extern "C" {

// Version of the stream definition, as es_noise_stream_version() of the CPU library.
int es_noise_cuda_stream_version(void) { return ES_NOISE_STREAM_VERSION; }

// out[i] = base[i] + scale * eps[i] for i < n on device `device` (out = scale * eps when base is NULL), launched on
// `stream` (a cudaStream_t; NULL: the legacy default stream); out may alias base. Returns a cudaError_t, 0 on success.
int es_axpy_normal_cuda(float* out, const float* base, int64_t n, uint64_t key, float scale, int device,
                        void* stream) {
  if (n <= 0) return 0;
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) return (int)err;
  static int sms_of[ES_MAX_DEVICES];  // multiprocessor counts, looked up once per device
  int sms = device >= 0 && device < ES_MAX_DEVICES ? sms_of[device] : 0;
  if (sms <= 0) {
    err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (err != cudaSuccess) return (int)err;
    if (device >= 0 && device < ES_MAX_DEVICES) sms_of[device] = sms;
  }
  const int64_t counters = (n + 3) / 4;
  const int64_t wanted = (counters + ES_THREADS - 1) / ES_THREADS, cap = (int64_t)sms * 32;
  const int blocks = (int)(wanted < cap ? wanted : cap);
  const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  cudaStream_t s = (cudaStream_t)stream;
  if (base)
    es_launch<true>(out, base, n, k0, k1, scale, blocks, s);
  else
    es_launch<false>(out, nullptr, n, k0, k1, scale, blocks, s);
  return (int)cudaGetLastError();
}

// 0 when the kernel can run on `device` (driver new enough, code for its architecture), else a cudaError_t.
int es_cuda_probe(int device) {
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) return (int)err;
  cudaFuncAttributes attr;
  return (int)cudaFuncGetAttributes(&attr, es_axpy_normal_kernel<true, true>);
}

// The message of a cudaError_t returned above.
const char* es_cuda_error_string(int err) { return cudaGetErrorString((cudaError_t)err); }

}  // extern "C"
