// Shared helpers of the trtapps kernels. Compiled by NVRTC through trtapps.gpu.kernels, which puts this file
// first and adds `#define` lines for the variants; no system header is included, so the kernels compile with
// NVRTC alone (no CUDA toolkit headers needed on the machine).
//
// Everything is compiled with --fmad=false: float/double expressions round like NumPy's (no fused
// multiply-add), which the NumPy twins of these kernels rely on.

#ifndef TRTAPPS_COMMON_CUH
#define TRTAPPS_COMMON_CUH

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

// IEEE half <-> float without cuda_fp16.h (round to nearest even, like NumPy's astype(float16))
__device__ __forceinline__ float half_bits_to_float(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 float_to_half_bits(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// model outputs read by the decode kernels: float32, or float16 with -D IN_FP16=1
#ifndef IN_FP16
#define IN_FP16 0
#endif
#if IN_FP16
typedef u16 in_t;
__device__ __forceinline__ float load_in(const in_t* p, i64 i) { return half_bits_to_float(p[i]); }
#else
typedef float in_t;
__device__ __forceinline__ float load_in(const in_t* p, i64 i) { return p[i]; }
#endif

#endif  // TRTAPPS_COMMON_CUH
