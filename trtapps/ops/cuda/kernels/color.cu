// NV12 -> interleaved BGR uint8 (trtapps.gpu.color.nv12_to_bgr), for consumers that need BGR pixels of a decoded
// frame (sinks, OpenCV crops). Compiled after common.cuh and preprocess.cu, whose nv12_pixel it shares with the
// preprocessing kernel: both equal cv2.cvtColor(nv12, COLOR_YUV2BGR_NV12) bit for bit.
//
// Grid (ceil(W/32), ceil(H/8)), block (32, 8): one thread per pixel. Both NV12 planes have row pitch `pitch`;
// `out` has rows of `out_pitch` bytes.
extern "C" __global__ void nv12_to_bgr(
    const u8* __restrict__ luma, const u8* __restrict__ chroma, i64 pitch, int width, int height,
    u8* __restrict__ out, i64 out_pitch)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) return;
    int bgr[3];
    nv12_pixel(luma, chroma, pitch, x, y, bgr);
    u8* o = out + (i64)y * out_pitch + (i64)x * 3;
    o[0] = (u8)bgr[0];
    o[1] = (u8)bgr[1];
    o[2] = (u8)bgr[2];
}
