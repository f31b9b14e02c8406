// Detection-head decoding: one thread per anchor (blockIdx.y = image), low scores dropped first, survivors
// compacted with atomicAdd into a fixed-size per-image buffer.
//
// Candidate records (float32):
//   YOLO, width 7:  x1, y1, x2, y2, score, class, anchor
//   faces, width 16: x1, y1, x2, y2, score, lx0, ly0, ..., lx4, ly4, anchor
// counts[b] is incremented for every candidate, also past the capacity (records beyond it are not written),
// so counts[b] > capacity tells the caller that candidates were lost.
//
// Optional per-image mapping (params != 0, (B, 6) float32 = gain_x, gain_y, pad_x, pad_y, width, height):
//   x = (x' - pad_x) / gain_x, y = (y' - pad_y) / gain_y (Ultralytics' scale_boxes), then with clip != 0
//   clipped to [0, width] x [0, height]. Landmarks are mapped (and clipped) like box corners.
//
// All arithmetic is float32 with --fmad=false, in the order of the NumPy references
// (trtapps/ops/decode.py); only expf (YOLOX sizes, RetinaFace sizes, softmax of logits) may differ from
// NumPy's exp by an ulp or two.

#define YOLO_WIDTH 7
#define FACE_WIDTH 16

__device__ __forceinline__ float map_x(float v, const float* p, int clip) {
    v = (v - p[2]) / p[0];
    if (clip) v = fminf(fmaxf(v, 0.0f), p[4]);
    return v;
}

__device__ __forceinline__ float map_y(float v, const float* p, int clip) {
    v = (v - p[3]) / p[1];
    if (clip) v = fminf(fmaxf(v, 0.0f), p[5]);
    return v;
}

// Ultralytics xywh2xyxy: half = w / 2; x1 = cx - half; x2 = cx + half
__device__ __forceinline__ void emit_yolo(
    float cx, float cy, float w, float h, float score, int cls, int anchor, int b,
    const float* params, int clip, float* out, int* counts, int capacity)
{
    const float half_w = w / 2.0f;
    const float half_h = h / 2.0f;
    float x1 = cx - half_w, y1 = cy - half_h, x2 = cx + half_w, y2 = cy + half_h;
    if (params) {
        const float* p = params + (i64)b * 6;
        x1 = map_x(x1, p, clip);
        y1 = map_y(y1, p, clip);
        x2 = map_x(x2, p, clip);
        y2 = map_y(y2, p, clip);
    }
    const int slot = atomicAdd(counts + b, 1);
    if (slot >= capacity) return;
    float* r = out + ((i64)b * capacity + slot) * YOLO_WIDTH;
    r[0] = x1;
    r[1] = y1;
    r[2] = x2;
    r[3] = y2;
    r[4] = score;
    r[5] = (float)cls;
    r[6] = (float)anchor;
}

// YOLOv8 / YOLO11: pred (B, 4 + C, N) channel-first; rows cx, cy, w, h, then C class probabilities.
// score = max class probability (first index on ties), kept when score > conf.
// multi_label: one candidate per class with probability > conf.
extern "C" __global__ void decode_yolov8(
    const in_t* __restrict__ pred, int num_anchors, int num_classes, float conf, int multi_label,
    const float* __restrict__ params, int clip, float* __restrict__ out, int* __restrict__ counts,
    int capacity)
{
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    const int b = blockIdx.y;
    if (n >= num_anchors) return;
    const in_t* base = pred + (i64)b * (4 + num_classes) * num_anchors + n;
    const i64 stride = num_anchors;

    if (!multi_label) {
        float best = load_in(base, 4 * stride);
        int best_c = 0;
        for (int c = 1; c < num_classes; ++c) {
            const float v = load_in(base, (4 + c) * stride);
            if (v > best) { best = v; best_c = c; }
        }
        if (!(best > conf)) return;
        emit_yolo(load_in(base, 0), load_in(base, stride), load_in(base, 2 * stride), load_in(base, 3 * stride),
                  best, best_c, n, b, params, clip, out, counts, capacity);
    } else {
        bool loaded = false;
        float cx = 0.f, cy = 0.f, w = 0.f, h = 0.f;
        for (int c = 0; c < num_classes; ++c) {
            const float v = load_in(base, (4 + c) * stride);
            if (!(v > conf)) continue;
            if (!loaded) {
                cx = load_in(base, 0);
                cy = load_in(base, stride);
                w = load_in(base, 2 * stride);
                h = load_in(base, 3 * stride);
                loaded = true;
            }
            emit_yolo(cx, cy, w, h, v, c, n, b, params, clip, out, counts, capacity);
        }
    }
}

// YOLOv5 (decoded head) and raw YOLOX: pred (B, N, 5 + C) rows cx, cy, w, h, obj, C class probabilities.
// Anchors with obj <= conf are dropped first; score = cls * obj, best over classes (first index on ties),
// kept when > conf (multi_label: every class with cls * obj > conf).
// grid != 0 (raw YOLOX, (N, 3) float32 gx, gy, stride): cx = (dx + gx) * s, w = expf(log_w) * s.
extern "C" __global__ void decode_yolo_rows(
    const in_t* __restrict__ pred, int num_anchors, int num_classes, const float* __restrict__ grid,
    float conf, int multi_label, const float* __restrict__ params, int clip, float* __restrict__ out,
    int* __restrict__ counts, int capacity)
{
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    const int b = blockIdx.y;
    if (n >= num_anchors) return;
    const in_t* row = pred + ((i64)b * num_anchors + n) * (5 + num_classes);
    const float obj = load_in(row, 4);
    if (!(obj > conf)) return;

    float cx = load_in(row, 0), cy = load_in(row, 1), w = load_in(row, 2), h = load_in(row, 3);
    if (grid) {
        const float gx = grid[(i64)n * 3], gy = grid[(i64)n * 3 + 1], s = grid[(i64)n * 3 + 2];
        cx = (cx + gx) * s;
        cy = (cy + gy) * s;
        w = expf(w) * s;
        h = expf(h) * s;
    }
    if (!multi_label) {
        float best = load_in(row, 5) * obj;
        int best_c = 0;
        for (int c = 1; c < num_classes; ++c) {
            const float v = load_in(row, 5 + c) * obj;
            if (v > best) { best = v; best_c = c; }
        }
        if (!(best > conf)) return;
        emit_yolo(cx, cy, w, h, best, best_c, n, b, params, clip, out, counts, capacity);
    } else {
        for (int c = 0; c < num_classes; ++c) {
            const float v = load_in(row, 5 + c) * obj;
            if (v > conf) emit_yolo(cx, cy, w, h, v, c, n, b, params, clip, out, counts, capacity);
        }
    }
}

// RetinaFace (biubug6): loc (B, N, 4), conf (B, N, 2), landmarks (B, N, 10), each given as a pointer, a batch
// stride and a row stride in elements (separate heads, or views of one packed (B, N, 16) output).
// priors (N, 4) float32 (cx, cy, w, h) normalised; in_w, in_h = the network input size.
// score = conf[..., 1] (logits != 0: 1 / (1 + expf(c0 - c1)), the 2-way softmax), kept when > conf_thr.
// centre = p.c + (l * var0) * p.wh; size = p.wh * expf(l * var1); box = centre -/+ size / 2; times (W, H).
// landmark k = p.c + (d_k * var0) * p.wh, times (W, H).
extern "C" __global__ void decode_retinaface(
    const in_t* __restrict__ loc, i64 loc_bstride, int loc_rstride,
    const in_t* __restrict__ cnf, i64 cnf_bstride, int cnf_rstride,
    const in_t* __restrict__ ldm, i64 ldm_bstride, int ldm_rstride,
    int num_priors, const float* __restrict__ priors, float in_w, float in_h, float conf_thr, int logits,
    float var0, float var1, const float* __restrict__ params, int clip, float* __restrict__ out,
    int* __restrict__ counts, int capacity)
{
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    const int b = blockIdx.y;
    if (n >= num_priors) return;
    const in_t* c = cnf + (i64)b * cnf_bstride + (i64)n * cnf_rstride;
    float score;
    if (logits) {
        score = 1.0f / (1.0f + expf(load_in(c, 0) - load_in(c, 1)));
    } else {
        score = load_in(c, 1);
    }
    if (!(score > conf_thr)) return;

    const float pcx = priors[(i64)n * 4], pcy = priors[(i64)n * 4 + 1];
    const float pw = priors[(i64)n * 4 + 2], ph = priors[(i64)n * 4 + 3];
    const in_t* l = loc + (i64)b * loc_bstride + (i64)n * loc_rstride;
    const float cx = pcx + (load_in(l, 0) * var0) * pw;
    const float cy = pcy + (load_in(l, 1) * var0) * ph;
    const float sw = pw * expf(load_in(l, 2) * var1);
    const float sh = ph * expf(load_in(l, 3) * var1);

    float rec[FACE_WIDTH];
    rec[0] = (cx - sw / 2.0f) * in_w;
    rec[1] = (cy - sh / 2.0f) * in_h;
    rec[2] = (cx + sw / 2.0f) * in_w;
    rec[3] = (cy + sh / 2.0f) * in_h;
    rec[4] = score;
    const in_t* d = ldm + (i64)b * ldm_bstride + (i64)n * ldm_rstride;
#pragma unroll
    for (int k = 0; k < 5; ++k) {
        rec[5 + 2 * k] = (pcx + (load_in(d, 2 * k) * var0) * pw) * in_w;
        rec[6 + 2 * k] = (pcy + (load_in(d, 2 * k + 1) * var0) * ph) * in_h;
    }
    rec[15] = (float)n;
    if (params) {
        const float* p = params + (i64)b * 6;
        rec[0] = map_x(rec[0], p, clip);
        rec[1] = map_y(rec[1], p, clip);
        rec[2] = map_x(rec[2], p, clip);
        rec[3] = map_y(rec[3], p, clip);
#pragma unroll
        for (int k = 0; k < 5; ++k) {
            rec[5 + 2 * k] = map_x(rec[5 + 2 * k], p, clip);
            rec[6 + 2 * k] = map_y(rec[6 + 2 * k], p, clip);
        }
    }
    const int slot = atomicAdd(counts + b, 1);
    if (slot >= capacity) return;
    float* r = out + ((i64)b * capacity + slot) * FACE_WIDTH;
#pragma unroll
    for (int k = 0; k < FACE_WIDTH; ++k) r[k] = rec[k];
}
