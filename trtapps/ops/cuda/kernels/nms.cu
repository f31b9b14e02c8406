// Exact greedy NMS for every image of a batch (bitmask method), no host round trip.
//
// Input: candidate records (B, capacity, width) float32 from decode.cu and counts (B,) int32 (may exceed the
// capacity; only min(count, capacity) records are valid). Record columns: box x1, y1, x2, y2 at 0..3, score
// at 4, class at class_col (< 0: none), anchor index at anchor_col.
//
// 1. sort_candidates (bitonic; in shared memory up to 4096 candidates, else a global scratch): order[b][r] = the slot
//    of the r-th best candidate: score descending, then anchor ascending, then class ascending (the order
//    of a stable sort by score of candidates listed anchor by anchor, class by class), as one unique 64-bit
//    key: (~ordered_bits(score)) << 32 | anchor << 11 | class (anchor < 2^21, class < 2^11).
// 2. nms_mask: for sorted candidates i < j, bit j of mask[b][i][j / 64] is set when IoU(i, j) > threshold.
//    IoU in float64 exactly as trtapps.ops.nms (areas (x2 - x1 + e)(y2 - y1 + e), union = area_i + area_j -
//    inter, inter / max(union, 1e-12), 0 when union <= 0); class-aware NMS adds class * offset (7680.0) to
//    the coordinates in float64, as trtapps.ops.nms.batched_nms does.
// 3. nms_scan_gather: one warp per image walks the sorted candidates greedily (a candidate is kept unless a
//    kept one suppressed it), stops at max_det, and writes the kept records, best first, into the compact
//    output (B, max_det, width) (rows past the kept count are zeroed), the kept counts and the raw candidate
//    counts. Optionally maps coordinates back to the original image (params, as in decode.cu) there.

#define NMS_BLOCK 64
#define KEY_ANCHOR_BITS 21
#define KEY_CLASS_BITS 11

__device__ __forceinline__ u64 candidate_key(const float* rec, int class_col, int anchor_col) {
    const u32 f = __float_as_uint(rec[4]);
    const u32 ordered = (f & 0x80000000u) ? ~f : (f | 0x80000000u);  // monotone in the float value
    const u32 desc = ~ordered;                                        // best score first
    float a = rec[anchor_col];
    a = fminf(fmaxf(a, 0.0f), (float)((1u << KEY_ANCHOR_BITS) - 1));
    u32 cls = 0;
    if (class_col >= 0) {
        float c = rec[class_col];
        c = fminf(fmaxf(c, 0.0f), (float)((1u << KEY_CLASS_BITS) - 1));
        cls = (u32)c;
    }
    return ((u64)desc << 32) | ((u64)((u32)a) << KEY_CLASS_BITS) | (u64)cls;
}

// Sorts one image's keys (with their slots) in place: bitonic over p entries (a power of two), by the whole block.
template <typename Slot>
__device__ void bitonic_sort(u64* key, Slot* slot, int p) {
    for (int k = 2; k <= p; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = threadIdx.x; i < p; i += blockDim.x) {
                const int ixj = i ^ j;
                if (ixj > i) {
                    const u64 a = key[i], c = key[ixj];
                    const bool ascending = (i & k) == 0;
                    if ((a > c) == ascending) {
                        key[i] = c;
                        key[ixj] = a;
                        const Slot t = slot[i];
                        slot[i] = slot[ixj];
                        slot[ixj] = t;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// The keys of an image's n candidates padded to p entries with the largest key, sorted; order gets the slots.
template <typename Slot>
__device__ void sort_image(
    const float* recs, int n, int p, int width, int class_col, int anchor_col, u64* key, Slot* slot, int* order)
{
    for (int i = threadIdx.x; i < p; i += blockDim.x) {
        key[i] = i < n ? candidate_key(recs + (i64)i * width, class_col, anchor_col) : ~0ull;
        slot[i] = (Slot)i;
    }
    __syncthreads();
    bitonic_sort(key, slot, p);
    for (int i = threadIdx.x; i < n; i += blockDim.x) order[i] = (int)slot[i];
}

// One block per image; n = min(count, capacity) candidates, p = next_pow2(n) keys sorted. Where p <= smax, in
// dynamic shared memory (smax * 8 bytes of keys + smax * 2 bytes of slots, smax <= 4096); otherwise in the image's
// stretch of the global scratch gkey/gslot (B * gstride entries each, gstride >= next_pow2(capacity); null when
// capacity <= smax). The sort costs what the image's own candidates need, not what the buffer could hold.
extern "C" __global__ void sort_candidates(
    const float* __restrict__ records, const int* __restrict__ counts, int capacity, int width,
    int class_col, int anchor_col, int smax, u64* __restrict__ gkey, int* __restrict__ gslot, int gstride,
    int* __restrict__ order)
{
    extern __shared__ u64 smem[];
    const int b = blockIdx.x;
    const int n = min(counts[b], capacity);
    int p = 1;
    while (p < n) p <<= 1;
    const float* recs = records + (i64)b * capacity * width;
    int* out = order + (i64)b * capacity;
    if (p <= smax) {
        sort_image(recs, n, p, width, class_col, anchor_col, smem, (u16*)(smem + smax), out);
    } else {
        sort_image(recs, n, p, width, class_col, anchor_col, gkey + (i64)b * gstride, gslot + (i64)b * gstride, out);
    }
}

__device__ __forceinline__ void load_box(
    const float* rec, int class_col, int class_aware, double class_offset, double e, double* box)
{
    double off = 0.0;
    if (class_aware && class_col >= 0) off = (double)rec[class_col] * class_offset;
    box[0] = (double)rec[0] + off;
    box[1] = (double)rec[1] + off;
    box[2] = (double)rec[2] + off;
    box[3] = (double)rec[3] + off;
    box[4] = (box[2] - box[0] + e) * (box[3] - box[1] + e);
}

// grid (col_blocks, col_blocks, B), block 64. mask (B, capacity, col_blocks) u64; only blocks with
// col_block >= row_block are written (the scan never reads the others).
extern "C" __global__ void nms_mask(
    const float* __restrict__ records, const int* __restrict__ counts, const int* __restrict__ order,
    int capacity, int width, int class_col, int class_aware, double class_offset, double plus_one,
    double iou_threshold, int col_blocks, u64* __restrict__ mask)
{
    const int cb = blockIdx.x, rb = blockIdx.y, b = blockIdx.z;
    if (rb > cb) return;
    const int n = min(counts[b], capacity);
    const int row_start = rb * NMS_BLOCK, col_start = cb * NMS_BLOCK;
    if (col_start >= n) return;  // row_start <= col_start
    const int row_size = min(n - row_start, NMS_BLOCK);
    const int col_size = min(n - col_start, NMS_BLOCK);
    const int t = threadIdx.x;
    const float* recs = records + (i64)b * capacity * width;
    const int* ord = order + (i64)b * capacity;

    __shared__ double cols[NMS_BLOCK * 5];
    if (t < col_size) load_box(recs + (i64)ord[col_start + t] * width, class_col, class_aware, class_offset,
                               plus_one, cols + t * 5);
    __syncthreads();
    if (t >= row_size) return;

    double a[5];
    load_box(recs + (i64)ord[row_start + t] * width, class_col, class_aware, class_offset, plus_one, a);
    u64 bits = 0;
    const int start = (rb == cb) ? t + 1 : 0;
    for (int j = start; j < col_size; ++j) {
        const double* c = cols + j * 5;
        const double w = fmax(0.0, fmin(a[2], c[2]) - fmax(a[0], c[0]) + plus_one);
        const double h = fmax(0.0, fmin(a[3], c[3]) - fmax(a[1], c[1]) + plus_one);
        const double inter = w * h;
        const double uni = a[4] + c[4] - inter;
        const double iou = uni > 0.0 ? inter / fmax(uni, 1e-12) : 0.0;
        if (iou > iou_threshold) bits |= 1ull << j;
    }
    mask[((i64)b * capacity + row_start + t) * col_blocks + cb] = bits;
}

__device__ __forceinline__ float gather_value(
    const float* rec, int col, const float* p, int clip, int has_landmarks)
{
    float v = rec[col];
    if (!p) return v;
    int k = -1;  // coordinate index: even = x, odd = y
    if (col < 4) k = col;
    else if (has_landmarks && col >= 5 && col < 15) k = col - 5;
    if (k < 0) return v;
    if ((k & 1) == 0) {
        v = (v - p[2]) / p[0];
        if (clip) v = fminf(fmaxf(v, 0.0f), p[4]);
    } else {
        v = (v - p[3]) / p[1];
        if (clip) v = fminf(fmaxf(v, 0.0f), p[5]);
    }
    return v;
}

// grid (B), block 32 (one warp), dynamic shared memory col_blocks * 8 bytes.
extern "C" __global__ void nms_scan_gather(
    const float* __restrict__ records, const int* __restrict__ counts, const int* __restrict__ order,
    const u64* __restrict__ mask, int capacity, int width, int col_blocks, int max_det,
    const float* __restrict__ params, int clip, int has_landmarks,
    float* __restrict__ out_records, int* __restrict__ out_kept, int* __restrict__ out_found)
{
    extern __shared__ u64 removed[];
    const int b = blockIdx.x;
    const int lane = threadIdx.x;
    const int found = counts[b];
    const int n = min(found, capacity);
    const int nb = (n + NMS_BLOCK - 1) / NMS_BLOCK;
    for (int w = lane; w < nb; w += 32) removed[w] = 0ull;
    __syncwarp();

    const float* recs = records + (i64)b * capacity * width;
    const int* ord = order + (i64)b * capacity;
    const u64* masks = mask + (i64)b * capacity * col_blocks;
    const float* p = params ? params + (i64)b * 6 : 0;
    float* dst = out_records + (i64)b * max_det * width;

    int kept = 0;
    for (int w = 0; w < nb && kept < max_det; ++w) {
        u64 cur = removed[w];
        const int jmax = min(NMS_BLOCK, n - w * NMS_BLOCK);
        for (int j = 0; j < jmax; ++j) {
            if ((cur >> j) & 1ull) continue;
            const int i = w * NMS_BLOCK + j;
            const float* rec = recs + (i64)ord[i] * width;
            if (lane < width) dst[(i64)kept * width + lane] = gather_value(rec, lane, p, clip, has_landmarks);
            ++kept;
            if (kept >= max_det) break;
            const u64* row = masks + (i64)i * col_blocks;
            cur |= row[w];
            for (int w2 = w + 1 + lane; w2 < nb; w2 += 32) removed[w2] |= row[w2];
        }
        __syncwarp();
    }
    for (i64 k = (i64)kept * width + lane; k < (i64)max_det * width; k += 32) dst[k] = 0.0f;
    if (lane == 0) {
        out_kept[b] = kept;
        out_found[b] = found;
    }
}
