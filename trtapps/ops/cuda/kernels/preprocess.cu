// Fused letterbox / crop-resize + normalisation + HWC->CHW, one launch per batch.
//
// Grid (ceil(W/32), ceil(H/8), B), block (32, 8): one thread per output pixel (x, y) of image b = blockIdx.z.
// Per image, 14 int64 parameters (trtapps.ops.preprocess.pack_preprocess_params):
//   0 source pointer (uint8 HWC BGR, or the NV12 luma plane), 1 source row pitch in bytes (both NV12 planes),
//   2..5 source crop x, y, w, h (the rectangle that is resized; the whole image for a letterbox),
//   6..9 destination ROI x, y, w, h (where the resized crop lands in the output; outside it: the pad value),
//   10, 11 cv2's scale_x, scale_y as double bits (1 / (roi_w / crop_w) computed in double on the host),
//   12 pixel format (0 BGR, 1 NV12), 13 NV12 chroma plane pointer (interleaved U, V; 0 for BGR).
//
// NV12 sources: each of the four bilinear neighbours is first converted to BGR exactly as
// cv2.cvtColor(..., COLOR_YUV2BGR_NV12) converts it (nv12_pixel below: BT.601 limited range, 20-bit fixed point,
// chroma shared by each 2x2 block), so the result is that of the BGR path on the converted image, bit for bit.
//
// Inside the ROI the value is cv2.resize(crop, (roi_w, roi_h), INTER_LINEAR) bit for bit (uint8):
//   * coordinates: fx = (float)((dx + 0.5) * scale_x - 0.5) in double, sx = floor(fx), fx -= sx;
//     columns: sx < 0 -> (0, fx = 0); sx >= w - 1 -> (w - 1, fx = 0);
//     rows are NOT clamped this way: fy keeps its fraction and both rows are clipped to [0, h - 1]
//     (cv2's resizeGeneric_ clips the row indices only), which changes the rounding at the top/bottom edges;
//   * weights: short(rint((1 - f) * 2048)), short(rint(f * 2048)) (INTER_RESIZE_COEF_BITS = 11);
//   * horizontal: h = p0 * a0 + p1 * a1 (int);
//   * vertical (cv2's uint8 VResizeLinear): v = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2,
//     then saturated to [0, 255].
// An exact 2x downscale takes cv2's INTER_AREA fast path, which gives the same numbers ((a+b+c+d+2)>>2).
// Then, per output channel c (source channel 2 - c when swap_rb): out = (v * scale - mean[c]) / std[c] in
// float32 (IEEE mul, sub, div; no FMA), stored as float32, or float16 (round to nearest even) with OUT_FP16=1.
// Outside the ROI v is pad[c] (given in pixel units, output channel order) and goes through the same formula.

#ifndef OUT_FP16
#define OUT_FP16 0
#endif

#define PP_PARAMS 14
#define PIXEL_NV12 1

// OpenCV's ITUR_BT_601_* constants (color_yuv.simd.hpp)
#define BT601_SHIFT 20
#define BT601_CY 1220542
#define BT601_CUB 2116026
#define BT601_CUG (-409993)
#define BT601_CVG (-852492)
#define BT601_CVR 1673527

// Pixel (x, y) of an NV12 image as B, G, R (0..255), as OpenCV's YUV420sp -> BGR conversion computes it:
// y' = max(0, Y - 16) * CY; B = (y' + 2^19 + CUB * u) >> 20, G = (... + CVG * v + CUG * u) >> 20,
// R = (... + CVR * v) >> 20, saturated; u, v = U - 128, V - 128 of the pixel's 2x2 block. All terms fit in int.
__device__ __forceinline__ void nv12_pixel(const u8* luma, const u8* chroma, i64 pitch, int x, int y, int bgr[3]) {
    const int yy = (int)luma[(i64)y * pitch + x];
    const u8* uv = chroma + (i64)(y >> 1) * pitch + (i64)(x >> 1) * 2;
    const int u = (int)uv[0] - 128;
    const int v = (int)uv[1] - 128;
    const int base = max(yy - 16, 0) * BT601_CY + (1 << (BT601_SHIFT - 1));
    bgr[0] = min(max((base + BT601_CUB * u) >> BT601_SHIFT, 0), 255);
    bgr[1] = min(max((base + BT601_CVG * v + BT601_CUG * u) >> BT601_SHIFT, 0), 255);
    bgr[2] = min(max((base + BT601_CVR * v) >> BT601_SHIFT, 0), 255);
}

// Pixel (x, y) of a source image as B, G, R, whatever its format.
__device__ __forceinline__ void source_pixel(
    const u8* src, const u8* chroma, i64 pitch, int nv12, int x, int y, int bgr[3]) {
    if (nv12) {
        nv12_pixel(src, chroma, pitch, x, y, bgr);
    } else {
        const u8* p = src + (i64)y * pitch + (i64)x * 3;
        bgr[0] = p[0];
        bgr[1] = p[1];
        bgr[2] = p[2];
    }
}

__device__ __forceinline__ void cv2_coord(int d, double scale, float& f, int& s) {
    // cv2: fx = (float)((dx + 0.5) * scale_x - 0.5); sx = cvFloor(fx); fx -= sx;
    double t = __dadd_rn(__dmul_rn((double)d + 0.5, scale), -0.5);
    f = __double2float_rn(t);
    s = __float2int_rd(f);
    f = __fsub_rn(f, (float)s);
}

__device__ __forceinline__ int cv2_weight(float w) {
    // saturate_cast<short>(w * INTER_RESIZE_COEF_SCALE): round half to even
    return __float2int_rn(__fmul_rn(w, 2048.0f));
}

extern "C" __global__ void letterbox_normalize(
    const i64* __restrict__ params, int out_w, int out_h,
#if OUT_FP16
    u16* __restrict__ out,
#else
    float* __restrict__ out,
#endif
    float scale, float mean0, float mean1, float mean2, float std0, float std1, float std2,
    float pad0, float pad1, float pad2, int swap_rb)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    if (x >= out_w || y >= out_h) return;

    const i64* p = params + (i64)b * PP_PARAMS;
    const int roi_x = (int)p[6], roi_y = (int)p[7], roi_w = (int)p[8], roi_h = (int)p[9];
    const int rx = x - roi_x, ry = y - roi_y;

    float v[3];
    if (rx >= 0 && ry >= 0 && rx < roi_w && ry < roi_h) {
        const u8* src = (const u8*)(p[0]);
        const i64 pitch = p[1];
        const int crop_x = (int)p[2], crop_y = (int)p[3], crop_w = (int)p[4], crop_h = (int)p[5];
        const double scale_x = __longlong_as_double(p[10]);
        const double scale_y = __longlong_as_double(p[11]);

        float fy;
        int sy;
        cv2_coord(ry, scale_y, fy, sy);
        const int b0 = cv2_weight(__fsub_rn(1.0f, fy));
        const int b1 = cv2_weight(fy);
        const int r0 = min(max(sy, 0), crop_h - 1);
        const int r1 = min(max(sy + 1, 0), crop_h - 1);

        float fx;
        int sx;
        cv2_coord(rx, scale_x, fx, sx);
        if (sx < 0) { fx = 0.0f; sx = 0; }
        if (sx >= crop_w - 1) { fx = 0.0f; sx = crop_w - 1; }
        const int a0 = cv2_weight(__fsub_rn(1.0f, fx));
        const int a1 = cv2_weight(fx);
        const int c0 = sx;
        const int c1 = min(sx + 1, crop_w - 1);

        const int nv12 = (int)p[12] == PIXEL_NV12;
        const u8* chroma = (const u8*)(p[13]);
        int p00[3], p01[3], p10[3], p11[3];
        source_pixel(src, chroma, pitch, nv12, crop_x + c0, crop_y + r0, p00);
        source_pixel(src, chroma, pitch, nv12, crop_x + c1, crop_y + r0, p01);
        source_pixel(src, chroma, pitch, nv12, crop_x + c0, crop_y + r1, p10);
        source_pixel(src, chroma, pitch, nv12, crop_x + c1, crop_y + r1, p11);
#pragma unroll
        for (int ch = 0; ch < 3; ++ch) {
            const int h0 = p00[ch] * a0 + p01[ch] * a1;
            const int h1 = p10[ch] * a0 + p11[ch] * a1;
            int value = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2;
            value = min(max(value, 0), 255);
            v[ch] = (float)value;
        }
        if (swap_rb) {
            const float t = v[0];
            v[0] = v[2];
            v[2] = t;
        }
    } else {
        v[0] = pad0;
        v[1] = pad1;
        v[2] = pad2;
    }

    const float mean[3] = {mean0, mean1, mean2};
    const float stdv[3] = {std0, std1, std2};
    const i64 plane = (i64)out_w * out_h;
    const i64 base = (i64)b * 3 * plane + (i64)y * out_w + x;
#pragma unroll
    for (int c = 0; c < 3; ++c) {
        const float r = __fdiv_rn(__fsub_rn(__fmul_rn(v[c], scale), mean[c]), stdv[c]);
#if OUT_FP16
        out[base + c * plane] = float_to_half_bits(r);
#else
        out[base + c * plane] = r;
#endif
    }
}
