// CPU kernels for packed (varlen) attention and counter-based dropout.
//
// Built on first use by attnlab/kernels/__init__.py (c++ -O3 -march=native -fopenmp)
// and called through ctypes with raw pointers; the Python side owns every tensor,
// checks every shape and stride, and wraps the calls in autograd Functions.
//
// Shape letters: T packed tokens, B sequences, H heads, d head width (q, k), dv head
// width (v), n one sequence's length. cu[b] .. cu[b + 1] are the rows of sequence b.
// A tensor argument is a base pointer plus a row stride (elements between tokens);
// head h of a row starts h * width elements later and its width elements are contiguous.
//
// Attention for one (sequence, head) pair, row i (query) against keys j in [lo, hi)
// (the forward takes keys in cache-sized chunks with a running maximum and sum):
//   s_ij = scale * q_i . k_j,   p_ij = exp(s_ij - lse_i),   lse_i = log sum_j exp(s_ij)
//   o_i  = sum_j p_ij * keep_ij / (1 - p_drop) * v_j
// where [lo, hi) is the whole sequence, cut by `causal` (hi = i + 1) and `window`
// (|i - j| <= window). The backward recomputes p from lse (nothing n x n is stored).
//
// Dropout draws keep/drop from a hash of (seed, token row, head, key), so the backward
// regenerates exactly the forward's decisions without storing a mask.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include <omp.h>

namespace {

// -- random bits: splitmix64 finalizer ------------------------------------------------
inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// keep iff the top 24 bits of the hash are >= threshold = round(p * 2^24)
inline bool keep_bit(uint64_t base, uint64_t j, uint32_t threshold) {
    return (uint32_t)(mix64(base + j) >> 40) >= threshold;
}

// The constants of dropout with drop probability p: keep_bit's threshold and the factor
// 1 / (1 - p) that kept values are scaled by (exactly 1 when p = 0).
template <typename T>
struct Dropout {
    uint32_t threshold;
    T scale;
    explicit Dropout(double p) : threshold((uint32_t)std::lround(p * 16777216.0)), scale((T)(1.0 / (1.0 - p))) {}
};

// The hash base of attention dropout for query `row` (a token) and head h of H: key j of
// that row is kept iff keep_bit(row_base(...), j, threshold).
inline uint64_t row_base(uint64_t seed, int64_t row, int64_t H, int64_t h) {
    return mix64(seed ^ (uint64_t)(row * H + h));
}

// -- exp ------------------------------------------------------------------------------
// float: 2^(x log2 e) with round-to-nearest range reduction and a degree-7 polynomial
// (relative error below 1e-7 on [-87, 0]); plain arithmetic, so loops vectorize.
// X is float or a vector of floats (the tiled kernels' Simd<float>::exp): e^x = 2^r p(f),
// where r is returned through `r` and the polynomial p(f) ~ e^f is the result.
template <typename X>
inline X exp_parts(X x, X& r) {
    const X lo = X{} - 87.0f;
    x = x < lo ? lo : x;
    const X t = x * 1.44269504088896341f;
    r = (t + 12582912.0f) - 12582912.0f;  // round to nearest integer
    const X f = (t - r) * 0.69314718055994531f;  // |f| <= ln(2) / 2
    X p = X{} + 1.0f / 5040.0f;
    p = p * f + 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    return p;
}

inline float exp_approx(float x) {
    float r;
    const float p = exp_parts(x, r);
    const int32_t bits = ((int32_t)r + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

inline double exp_approx(double x) { return std::exp(x); }

struct Range {
    int64_t lo, hi;
};

inline Range key_range(int64_t i, int64_t n, bool causal, int64_t window) {
    int64_t lo = 0, hi = causal ? i + 1 : n;
    if (window >= 0) {
        lo = std::max<int64_t>(0, i - window);
        hi = std::min<int64_t>(hi, i + window + 1);
    }
    return {lo, hi};
}

// (sequence, head) work items, longest sequences first so dynamic scheduling balances.
std::vector<std::pair<int64_t, int64_t>> work_items(const int64_t* cu, int64_t B, int64_t H) {
    std::vector<std::pair<int64_t, int64_t>> items;
    std::vector<int64_t> order;
    for (int64_t b = 0; b < B; ++b)
        if (cu[b + 1] > cu[b]) order.push_back(b);
    std::stable_sort(order.begin(), order.end(),
                     [cu](int64_t a, int64_t b) { return cu[a + 1] - cu[a] > cu[b + 1] - cu[b]; });
    items.reserve(order.size() * H);
    for (int64_t b : order)
        for (int64_t h = 0; h < H; ++h) items.emplace_back(b, h);
    return items;
}

// The longest sequence.
inline int64_t longest(const int64_t* cu, int64_t B) {
    int64_t n_max = 0;
    for (int64_t b = 0; b < B; ++b) n_max = std::max(n_max, cu[b + 1] - cu[b]);
    return n_max;
}

// Head h (width d) of the n rows from `start` of x (row stride `row`), transposed:
// out[c * n + j] = x[(start + j) * row + h * d + c].
template <typename T>
inline void head_transposed(const T* x, int64_t row, int64_t start, int64_t n, int64_t h, int64_t d, T* out) {
    for (int64_t j = 0; j < n; ++j) {
        const T* xj = x + (start + j) * row + h * d;
        for (int64_t c = 0; c < d; ++c) out[c * n + j] = xj[c];
    }
}

// s[j] = sum_c (q[c] * scale) k_j[c] for j in [r.lo, r.hi), with k_j[c] at kt[c * n + j].
template <typename T>
inline void row_scores(const T* q, T scale, const T* kt, int64_t n, int64_t d, Range r, T* s) {
    for (int64_t j = r.lo; j < r.hi; ++j) s[j] = 0;
    for (int64_t c = 0; c < d; ++c) {
        const T qc = q[c] * scale;
        const T* ktc = kt + c * n;
        for (int64_t j = r.lo; j < r.hi; ++j) s[j] += qc * ktc[j];
    }
}

// Forward work: (sequence, head, first query row, end query row). A long sequence is cut
// into chunks of query rows (each reads all of its keys), so even one sequence with one
// head keeps every thread busy. Largest pieces first.
struct Piece {
    int64_t b, h, i0, i1, cost;
};

std::vector<Piece> forward_pieces(const int64_t* cu, int64_t B, int64_t H, int64_t chunk) {
    std::vector<Piece> pieces;
    for (int64_t b = 0; b < B; ++b) {
        const int64_t n = cu[b + 1] - cu[b];
        if (n == 0) continue;
        const int64_t step = n > 2 * chunk ? chunk : n;
        for (int64_t i0 = 0; i0 < n; i0 += step) {
            const int64_t i1 = std::min(n, i0 + step);
            for (int64_t h = 0; h < H; ++h) pieces.push_back({b, h, i0, i1, (i1 - i0) * n});
        }
    }
    std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& x, const Piece& y) { return x.cost > y.cost; });
    return pieces;
}

template <typename T>
struct Args {
    const T *q, *k, *v;
    int64_t q_row, k_row, v_row;
    const int64_t* cu;
    int64_t B, H, d, dv;
    T scale;
    bool causal;
    int64_t window;
    double p_drop;
    uint64_t seed;
};

template <typename T>
void attention_forward_generic(const Args<T>& a, T* out, int64_t o_row, T* lse) {
    const auto items = work_items(a.cu, a.B, a.H);
    const int64_t n_max = longest(a.cu, a.B);
    const Dropout<T> drop(a.p_drop);
    const int64_t n_items = (int64_t)items.size();

#pragma omp parallel
    {
        std::vector<T> kt_buf(n_max * a.d), s_buf(n_max), o_buf(a.dv);
        T* kt = kt_buf.data();
        T* s = s_buf.data();
        T* o = o_buf.data();
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n_items; ++it) {
            const int64_t b = items[it].first, h = items[it].second;
            const int64_t start = a.cu[b], n = a.cu[b + 1] - start;
            head_transposed(a.k, a.k_row, start, n, h, a.d, kt);  // K^T of this sequence and head: (d, n)
            for (int64_t i = 0; i < n; ++i) {
                const Range r = key_range(i, n, a.causal, a.window);
                // 1) scores s_j = scale * q_i . k_j
                row_scores(a.q + (start + i) * a.q_row + h * a.d, a.scale, kt, n, a.d, r, s);
                // 2) softmax over the allowed keys
                T m = s[r.lo];
#pragma omp simd reduction(max : m)
                for (int64_t j = r.lo + 1; j < r.hi; ++j) m = s[j] > m ? s[j] : m;
                T total = 0;
#pragma omp simd reduction(+ : total)
                for (int64_t j = r.lo; j < r.hi; ++j) {
                    const T e = exp_approx(s[j] - m);
                    s[j] = e;
                    total += e;
                }
                lse[(start + i) * a.H + h] = m + std::log(total);
                const T inv = (T)1 / total;
                if (a.p_drop > 0) {
                    const uint64_t base = row_base(a.seed, start + i, a.H, h);
                    for (int64_t j = r.lo; j < r.hi; ++j)
                        s[j] = keep_bit(base, (uint64_t)j, drop.threshold) ? s[j] * drop.scale : (T)0;
                }
                // 3) o_i = sum_j p_ij v_j
                for (int64_t c = 0; c < a.dv; ++c) o[c] = 0;
                for (int64_t j = r.lo; j < r.hi; ++j) {
                    const T w = s[j] * inv;
                    const T* vj = a.v + (start + j) * a.v_row + h * a.dv;
                    for (int64_t c = 0; c < a.dv; ++c) o[c] += w * vj[c];
                }
                T* orow = out + (start + i) * o_row + h * a.dv;
                for (int64_t c = 0; c < a.dv; ++c) orow[c] = o[c];
            }
        }
    }
}

template <typename T>
void attention_backward_generic(const Args<T>& a, const T* out, int64_t o_row, const T* dout, int64_t do_row,
                                const T* lse, T* dq, int64_t dq_row, T* dk, int64_t dk_row, T* dv, int64_t dv_row) {
    const auto items = work_items(a.cu, a.B, a.H);
    const int64_t n_max = longest(a.cu, a.B);
    const Dropout<T> drop(a.p_drop);
    const int64_t n_items = (int64_t)items.size();

#pragma omp parallel
    {
        std::vector<T> kt_buf(n_max * a.d), vt_buf(n_max * a.dv), dk_buf(n_max * a.d), dv_buf(n_max * a.dv);
        std::vector<T> p_buf(n_max), ds_buf(n_max), dp_buf(n_max), dq_buf(a.d), qi_buf(a.d), doi_buf(a.dv);
        T *kt = kt_buf.data(), *vt = vt_buf.data(), *dkl = dk_buf.data(), *dvl = dv_buf.data();
        T *p = p_buf.data(), *ds = ds_buf.data(), *dp = dp_buf.data(), *dqi = dq_buf.data();
        T *qi = qi_buf.data(), *doi = doi_buf.data();
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n_items; ++it) {
            const int64_t b = items[it].first, h = items[it].second;
            const int64_t start = a.cu[b], n = a.cu[b + 1] - start;
            head_transposed(a.k, a.k_row, start, n, h, a.d, kt);
            head_transposed(a.v, a.v_row, start, n, h, a.dv, vt);
            std::fill(dkl, dkl + n * a.d, (T)0);
            std::fill(dvl, dvl + n * a.dv, (T)0);
            for (int64_t i = 0; i < n; ++i) {
                const Range r = key_range(i, n, a.causal, a.window);
                const T* qrow = a.q + (start + i) * a.q_row + h * a.d;
                const T* orow = out + (start + i) * o_row + h * a.dv;
                const T* dorow = dout + (start + i) * do_row + h * a.dv;
                for (int64_t c = 0; c < a.d; ++c) qi[c] = qrow[c];
                T di = 0;  // D_i = dO_i . O_i
#pragma omp simd reduction(+ : di)
                for (int64_t c = 0; c < a.dv; ++c) {
                    doi[c] = dorow[c];
                    di += doi[c] * orow[c];
                }
                // 1) p_ij = exp(scale q_i . k_j - lse_i)
                row_scores(qi, a.scale, kt, n, a.d, r, p);
                const T l = lse[(start + i) * a.H + h];
                for (int64_t j = r.lo; j < r.hi; ++j) p[j] = exp_approx(p[j] - l);
                // 2) dP_ij = dO_i . v_j (through the dropout mask)
                row_scores(doi, (T)1, vt, n, a.dv, r, dp);
                if (a.p_drop > 0) {
                    const uint64_t base = row_base(a.seed, start + i, a.H, h);
                    for (int64_t j = r.lo; j < r.hi; ++j) {
                        const T keep = keep_bit(base, (uint64_t)j, drop.threshold) ? drop.scale : (T)0;
                        dp[j] *= keep;
                        ds[j] = p[j] * keep;  // the weight v_j actually received
                    }
                } else {
                    for (int64_t j = r.lo; j < r.hi; ++j) ds[j] = p[j];
                }
                // 3) dV_j += p'_ij dO_i
                for (int64_t j = r.lo; j < r.hi; ++j) {
                    const T w = ds[j];
                    T* dvj = dvl + j * a.dv;
                    for (int64_t c = 0; c < a.dv; ++c) dvj[c] += w * doi[c];
                }
                // 4) dS_ij = p_ij (dP_ij - D_i), scaled
                for (int64_t j = r.lo; j < r.hi; ++j) ds[j] = p[j] * (dp[j] - di) * a.scale;
                // 5) dQ_i = sum_j dS_ij k_j ; dK_j += dS_ij q_i
                for (int64_t c = 0; c < a.d; ++c) dqi[c] = 0;
                for (int64_t j = r.lo; j < r.hi; ++j) {
                    const T g = ds[j];
                    const T* kj = a.k + (start + j) * a.k_row + h * a.d;
                    T* dkj = dkl + j * a.d;
                    for (int64_t c = 0; c < a.d; ++c) {
                        dqi[c] += g * kj[c];
                        dkj[c] += g * qi[c];
                    }
                }
                T* dqrow = dq + (start + i) * dq_row + h * a.d;
                for (int64_t c = 0; c < a.d; ++c) dqrow[c] = dqi[c];
            }
            for (int64_t j = 0; j < n; ++j) {
                T* dkrow = dk + (start + j) * dk_row + h * a.d;
                T* dvrow = dv + (start + j) * dv_row + h * a.dv;
                for (int64_t c = 0; c < a.d; ++c) dkrow[c] = dkl[j * a.d + c];
                for (int64_t c = 0; c < a.dv; ++c) dvrow[c] = dvl[j * a.dv + c];
            }
        }
    }
}

// -- tiled attention for common head widths ----------------------------------------------
// The same computation as the generic loops above, organised for SIMD registers:
// GCC/Clang vector types of 64 bytes (L lanes), the head width D a compile-time
// constant, and R query rows processed together so every loaded key/value vector
// serves R rows. Keys are padded with zeros up to a multiple of L (never attended).

typedef float vfloat __attribute__((vector_size(64)));
typedef double vdouble __attribute__((vector_size(64)));
typedef int32_t vint32 __attribute__((vector_size(64)));
typedef int64_t vint64 __attribute__((vector_size(64)));

template <typename T>
struct Simd;

template <>
struct Simd<float> {
    typedef vfloat V;
    typedef vint32 I;
    static constexpr int L = 16;
    static V exp(V x) {
        V r;
        const V p = exp_parts(x, r);
        const I bits = (__builtin_convertvector(r, I) + 127) << 23;
        return p * (V)bits;
    }
};

template <>
struct Simd<double> {
    typedef vdouble V;
    typedef vint64 I;
    static constexpr int L = 8;
    static V exp(V x) {  // degree-12 polynomial: relative error ~2e-16
        const V lo = V{} - 708.0;
        x = x < lo ? lo : x;
        const V t = x * 1.4426950408889634074;
        const V r = (t + 6755399441055744.0) - 6755399441055744.0;
        const V f = (t - r) * 0.69314718055994530942;
        V p = V{} + 1.0 / 479001600.0;
        const double coef[] = {1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
                               1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
        for (double c : coef) p = p * f + c;
        const I bits = (__builtin_convertvector(r, I) + 1023) << 52;
        return p * (V)bits;
    }
};

template <typename V, typename T>
inline V vload(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}

template <typename V, typename T>
inline void vstore(T* p, V v) {
    std::memcpy(p, &v, sizeof(V));
}

// Rows per block: keep R * D / L accumulators within 16 registers. ATTNLAB_ROWS (a build-time
// define, for timing only) forces R.
template <typename T, int D>
constexpr int rows_per_block() {
#ifdef ATTNLAB_ROWS
    return ATTNLAB_ROWS;
#endif
    constexpr int per_row = D / Simd<T>::L;
    return per_row <= 4 ? 4 : (per_row <= 8 ? 2 : 1);
}

// Per thread: score rows of one block of R queries, and one sequence's dK, dV sums. Kept
// between calls (thread_local, grow-only): fresh large allocations cost page faults.
template <typename T>
struct Scratch {
    std::vector<T> dk, dv, s, p, dp;
    static void grow(std::vector<T>& v, int64_t size) {
        if ((int64_t)v.size() < size) v.resize(size);
    }
    void reserve(int64_t np, int64_t d, int r, bool backward) {
        grow(s, r * np);
        if (!backward) return;
        grow(dk, np * d);
        grow(dv, np * d);
        grow(p, r * np);
        grow(dp, r * np);
    }
};

// Transpose an L x L tile held in L vectors: after it, v[c][t] = old v[t][c]. Four (or
// three, for double) rounds of two-input shuffles swap ever smaller 2 x 2 sub-blocks.
template <typename T>
inline void transpose_tile(typename Simd<T>::V (&v)[Simd<T>::L]) {
    using V = typename Simd<T>::V;
    constexpr int L = Simd<T>::L;
#if !defined(__GNUC__) || defined(__clang__) || defined(ATTNLAB_PORTABLE_TRANSPOSE)
    T tile[L][L];  // compilers without GCC's two-input shuffle: through memory
    for (int i = 0; i < L; ++i)
        for (int j = 0; j < L; ++j) tile[j][i] = v[i][j];
    for (int i = 0; i < L; ++i) v[i] = vload<V>(tile[i]);
#else
    using I = typename Simd<T>::I;
    for (int b = L / 2; b >= 1; b /= 2) {
        I lo, hi;
        for (int p = 0; p < L; ++p) {
            const int g = p / (2 * b), w = p % (2 * b);
            lo[p] = w < b ? g * 2 * b + w : L + g * 2 * b + w - b;
            hi[p] = w < b ? g * 2 * b + b + w : L + g * 2 * b + w;
        }
        for (int g = 0; g < L; g += 2 * b)
            for (int i = g; i < g + b; ++i) {
                const V x = v[i], y = v[i + b];
                v[i] = __builtin_shuffle(x, y, lo);
                v[i + b] = __builtin_shuffle(x, y, hi);
            }
    }
#endif
}

// Head h of every row of x, transposed: out[(h * D + c) * stride + t] = x[t * row + h * D + c],
// followed by zero columns up to `stride`, so a key block may run past a sequence (and the
// batch) end. Tiles of L rows x L columns are transposed in registers.
template <typename T, int D>
void transpose_heads(const T* x, int64_t row, int64_t total, int64_t H, std::vector<T>& out, int64_t stride) {
    using V = typename Simd<T>::V;
    constexpr int L = Simd<T>::L;
    if ((int64_t)out.size() < H * D * stride) out.resize(H * D * stride);
    T* o = out.data();
    const int64_t tiles = total / L;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t h = 0; h < H; ++h) {
        for (int64_t tile = 0; tile < tiles; ++tile) {
            const int64_t t0 = tile * L;
            for (int c0 = 0; c0 < D; c0 += L) {
                V v[L];
                for (int i = 0; i < L; ++i) v[i] = vload<V>(x + (t0 + i) * row + h * D + c0);
                transpose_tile<T>(v);
                for (int i = 0; i < L; ++i) vstore(o + (h * D + c0 + i) * stride + t0, v[i]);
            }
        }
    }
    for (int64_t h = 0; h < H; ++h)
        for (int c = 0; c < D; ++c) {
            T* oc = o + (h * D + c) * stride;
            for (int64_t t = tiles * L; t < total; ++t) oc[t] = x[t * row + h * D + c];
            std::fill(oc + total, oc + stride, (T)0);
        }
}

// Scores of R rows against keys in blocks [jb0, jb1): out[r * out_stride + j] = q_r . k_j,
// with k_j's component c at kt[c * kt_stride + j].
template <typename T, int D, int R>
inline void scores(const T (&q)[R][D], const T* kt, int64_t kt_stride, int64_t jb0, int64_t jb1, T* out,
                   int64_t out_stride) {
    using V = typename Simd<T>::V;
    constexpr int L = Simd<T>::L;
    for (int64_t jb = jb0; jb < jb1; ++jb) {
        V acc[R] = {};
        for (int c = 0; c < D; ++c) {
            const V kv = vload<V>(kt + c * kt_stride + jb * L);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) acc[r] += q[r][c] * kv;
        }
        for (int r = 0; r < R; ++r) vstore(out + r * out_stride + jb * L, acc[r]);
    }
}

// R rows of width D from x (row stride `row`), times `scale`; rows past `rows` are zeros.
template <typename T, int D, int R>
inline void load_rows(T (&dst)[R][D], const T* x, int64_t row, int rows, T scale) {
    using V = typename Simd<T>::V;
    constexpr int L = Simd<T>::L;
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < D / L; ++k)
            vstore(&dst[r][k * L], r < rows ? vload<V>(x + r * row + k * L) * scale : V{});
}

// Horizontal sum / maximum of one vector (plain lane loops: faster here than shuffle trees).
template <typename T>
inline T hsum(typename Simd<T>::V v) {
    T s = 0;
    for (int l = 0; l < Simd<T>::L; ++l) s += v[l];
    return s;
}

template <typename T>
inline T hmax(typename Simd<T>::V v) {
    T m = v[0];
    for (int l = 1; l < Simd<T>::L; ++l) m = v[l] > m ? v[l] : m;
    return m;
}

// 0, 1, ..., L - 1 as the index vector of Simd<T>.
template <typename T>
inline typename Simd<T>::I lane_index() {
    typename Simd<T>::I iota;
    for (int l = 0; l < Simd<T>::L; ++l) iota[l] = l;
    return iota;
}

// Row s over blocks [jb0, jb1): keys outside [lo, hi) -> 0, others exp(s - shift);
// returns the sum.
template <typename T>
inline T masked_exp(T* s, int64_t jb0, int64_t jb1, int64_t lo, int64_t hi, T shift) {
    using V = typename Simd<T>::V;
    using I = typename Simd<T>::I;
    using E = typename std::remove_reference<decltype(std::declval<I>()[0])>::type;
    constexpr int L = Simd<T>::L;
    const I iota = lane_index<T>();
    const V sh = V{} + shift;
    V total = V{};
    for (int64_t jb = jb0; jb < jb1; ++jb) {
        const I j = iota + (E)(jb * L);
#ifdef ATTNLAB_TIME_WITHOUT_EXP  // timing only: wrong results, the cost of exp left out
        const V e = vload<V>(s + jb * L) - sh;
#else
        const V e = Simd<T>::exp(vload<V>(s + jb * L) - sh);
#endif
        const V p = (j >= (E)lo) & (j < (E)hi) ? e : V{};
        vstore(s + jb * L, p);
        total += p;
    }
    return hsum<T>(total);
}

// Maximum of row s over blocks [jb0, jb1), keys outside [lo, hi) ignored (-inf if none).
template <typename T>
inline T masked_max(const T* s, int64_t jb0, int64_t jb1, int64_t lo, int64_t hi) {
    using V = typename Simd<T>::V;
    using I = typename Simd<T>::I;
    using E = typename std::remove_reference<decltype(std::declval<I>()[0])>::type;
    constexpr int L = Simd<T>::L;
    const I iota = lane_index<T>();
    V m = V{} - std::numeric_limits<T>::infinity();
    for (int64_t jb = jb0; jb < jb1; ++jb) {
        const I j = iota + (E)(jb * L);
        const V x = vload<V>(s + jb * L);
        const V cand = (j >= (E)lo) & (j < (E)hi) ? x : m;
        m = cand > m ? cand : m;
    }
    return hmax<T>(m);
}

// Keys are taken in chunks of this many (a multiple of every L): a chunk of K^T and V
// stays in cache while all query rows of a piece use it (the flash-attention order), and
// each row's softmax is carried across chunks by its running maximum and sum.
// Both can be set at build time (-DATTNLAB_KEY_CHUNK=..., -DATTNLAB_QUERY_CHUNK=...) only to
// time other sizes (attnlab/bench/encoder/tiles.py); attnlab's own builds use the defaults.
#ifndef ATTNLAB_KEY_CHUNK
#define ATTNLAB_KEY_CHUNK 512
#endif
#ifndef ATTNLAB_QUERY_CHUNK
#define ATTNLAB_QUERY_CHUNK 64
#endif
constexpr int64_t kKeyChunk = ATTNLAB_KEY_CHUNK;
constexpr int64_t kQueryChunk = ATTNLAB_QUERY_CHUNK;  // query rows per piece of a long sequence

template <typename T, int D>
void attention_forward_tiled(const Args<T>& a, T* out, int64_t o_row, T* lse) {
    using V = typename Simd<T>::V;
    constexpr int L = Simd<T>::L, R = rows_per_block<T, D>(), DV = D / L;
    const auto pieces = forward_pieces(a.cu, a.B, a.H, kQueryChunk);
    int64_t piece_max = 0;
    for (const Piece& pc : pieces) piece_max = std::max(piece_max, pc.i1 - pc.i0);
    const int64_t total = a.cu[a.B], stride = total + L;
    const Dropout<T> drop(a.p_drop);
    const int64_t n_pieces = (int64_t)pieces.size();
    static thread_local std::vector<T> kt_buf;  // the calling thread's; workers read kt_all
    transpose_heads<T, D>(a.k, a.k_row, total, a.H, kt_buf, stride);
    const T* const kt_all = kt_buf.data();
    const int64_t rows_max = (piece_max + R - 1) / R * R;

#pragma omp parallel
    {
        // per thread: scores of R rows over one key chunk; running max, sum, output of a piece
        static thread_local Scratch<T> sc;
        sc.reserve(kKeyChunk, D, R, false);
        Scratch<T>::grow(sc.p, rows_max * (D + 2));
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n_pieces; ++it) {
            const Piece& piece = pieces[it];
            const int64_t b = piece.b, h = piece.h;
            const int64_t start = a.cu[b], n = a.cu[b + 1] - start;
            const T* kt = kt_all + h * D * stride + start;
            T* s = sc.s.data();
            T* run_m = sc.p.data();
            T* run_l = run_m + rows_max;
            T* acc = run_l + rows_max;  // (rows, D) unnormalized outputs
            const int64_t nrows = piece.i1 - piece.i0;
            std::fill(run_m, run_m + nrows, -std::numeric_limits<T>::infinity());
            std::fill(run_l, run_l + nrows, (T)0);
            std::fill(acc, acc + nrows * D, (T)0);
            const int64_t lo_piece = key_range(piece.i0, n, a.causal, a.window).lo / L * L;
            const int64_t hi_piece = key_range(piece.i1 - 1, n, a.causal, a.window).hi;
            for (int64_t k0 = lo_piece; k0 < hi_piece; k0 += kKeyChunk) {
                const int64_t k1 = std::min(hi_piece, k0 + kKeyChunk);
                for (int64_t i0 = piece.i0; i0 < piece.i1; i0 += R) {
                    const int rows = (int)std::min<int64_t>(R, piece.i1 - i0);
                    const int64_t lo_min = std::max(k0, key_range(i0, n, a.causal, a.window).lo);
                    const int64_t hi_max = std::min(k1, key_range(i0 + rows - 1, n, a.causal, a.window).hi);
                    if (lo_min >= hi_max) continue;
                    // blocks relative to the chunk start k0 (a multiple of L)
                    const int64_t jb0 = (lo_min - k0) / L, jb1 = (hi_max - k0 + L - 1) / L;
                    T q[R][D];
                    load_rows<T, D, R>(q, a.q + (start + i0) * a.q_row + h * D, a.q_row, rows, a.scale);
                    // 1) scores of the R rows against the chunk's keys: s[r * kKeyChunk + j - k0]
                    scores<T, D, R>(q, kt + k0, stride, jb0, jb1, s, kKeyChunk);
                    // 2) softmax carried across chunks: rescale what earlier chunks summed
                    T alpha[R];
                    for (int r = 0; r < R; ++r) {
                        T* sr = s + r * kKeyChunk;
                        const int64_t pr = i0 - piece.i0 + r;
                        if (r >= rows) {
                            std::fill(sr + jb0 * L, sr + jb1 * L, (T)0);
                            alpha[r] = 1;
                            continue;
                        }
                        const Range kr = key_range(i0 + r, n, a.causal, a.window);
                        const int64_t lo = std::max(kr.lo, k0) - k0, hi = std::min(kr.hi, k1) - k0;
                        if (lo >= hi) {
                            std::fill(sr + jb0 * L, sr + jb1 * L, (T)0);
                            alpha[r] = 1;
                            continue;
                        }
                        const T m_old = run_m[pr];
                        T m_new = std::max(m_old, masked_max<T>(sr, jb0, jb1, lo, hi));
                        alpha[r] = m_old == -std::numeric_limits<T>::infinity() ? (T)0 : std::exp(m_old - m_new);
                        const T sum = masked_exp<T>(sr, jb0, jb1, lo, hi, m_new);
                        run_m[pr] = m_new;
                        run_l[pr] = run_l[pr] * alpha[r] + sum;
                        if (a.p_drop > 0) {
                            const uint64_t base = row_base(a.seed, start + i0 + r, a.H, h);
                            for (int64_t j = lo; j < hi; ++j)
                                sr[j] = keep_bit(base, (uint64_t)(j + k0), drop.threshold) ? sr[j] * drop.scale : (T)0;
                        }
                    }
                    // 3) o_r = alpha_r o_r + sum_j p_rj v_j over the chunk
                    V o[R][DV];
                    for (int r = 0; r < R; ++r)
                        for (int k = 0; k < DV; ++k)
                            o[r][k] = r < rows ? vload<V>(acc + (i0 - piece.i0 + r) * D + k * L) * alpha[r] : V{};
                    // keys in [all_lo, all_hi) are in every row's range; a key outside a row's
                    // range must not reach it even as 0 * v_j (v_j may be inf or NaN)
                    const int64_t all_lo = key_range(i0 + rows - 1, n, a.causal, a.window).lo;
                    const int64_t all_hi = key_range(i0, n, a.causal, a.window).hi;
#ifdef ATTNLAB_TIME_WITHOUT_PV  // timing only: wrong results, the P.V products left out
                    for (int64_t j = lo_min; j < lo_min; ++j) {
#else
                    for (int64_t j = lo_min; j < hi_max; ++j) {
#endif
                        const T* vj = a.v + (start + j) * a.v_row + h * D;
                        V vv[DV];
                        for (int k = 0; k < DV; ++k) vv[k] = vload<V>(vj + k * L);
                        if (j >= all_lo && j < all_hi) {
#pragma GCC unroll 8
                            for (int r = 0; r < R; ++r) {
                                const T w = s[r * kKeyChunk + j - k0];
                                for (int k = 0; k < DV; ++k) o[r][k] += w * vv[k];
                            }
                            continue;
                        }
                        for (int r = 0; r < rows; ++r) {
                            const Range kr = key_range(i0 + r, n, a.causal, a.window);
                            if (j < kr.lo || j >= kr.hi) continue;
                            const T w = s[r * kKeyChunk + j - k0];
                            for (int k = 0; k < DV; ++k) o[r][k] += w * vv[k];
                        }
                    }
                    for (int r = 0; r < rows; ++r)
                        for (int k = 0; k < DV; ++k) vstore(acc + (i0 - piece.i0 + r) * D + k * L, o[r][k]);
                }
            }
            // 4) normalize: out = o / l, lse = m + log l
            for (int64_t i = piece.i0; i < piece.i1; ++i) {
                const int64_t pr = i - piece.i0;
                const T inv = (T)1 / run_l[pr];
                T* orow = out + (start + i) * o_row + h * D;
                for (int k = 0; k < DV; ++k) vstore(orow + k * L, vload<V>(acc + pr * D + k * L) * inv);
                lse[(start + i) * a.H + h] = run_m[pr] + std::log(run_l[pr]);
            }
        }
    }
}

template <typename T, int D>
void attention_backward_tiled(const Args<T>& a, const T* out, int64_t o_row, const T* dout, int64_t do_row,
                              const T* lse, T* dq, int64_t dq_row, T* dk, int64_t dk_row, T* dv, int64_t dv_row) {
    using V = typename Simd<T>::V;
    constexpr int L = Simd<T>::L, R = rows_per_block<T, D>(), DV = D / L;
    const auto items = work_items(a.cu, a.B, a.H);
    const int64_t n_max = longest(a.cu, a.B);
    const int64_t np_max = (n_max + L - 1) / L * L, total = a.cu[a.B], stride = total + L;
    const Dropout<T> drop(a.p_drop);
    const int64_t n_items = (int64_t)items.size();
    static thread_local std::vector<T> kt_buf, vt_buf;  // the calling thread's; workers read the pointers
    transpose_heads<T, D>(a.k, a.k_row, total, a.H, kt_buf, stride);
    transpose_heads<T, D>(a.v, a.v_row, total, a.H, vt_buf, stride);
    const T* const kt_all = kt_buf.data();
    const T* const vt_all = vt_buf.data();

#pragma omp parallel
    {
        static thread_local Scratch<T> sc;
        sc.reserve(np_max, D, R, true);
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n_items; ++it) {
            const int64_t b = items[it].first, h = items[it].second;
            const int64_t start = a.cu[b], n = a.cu[b + 1] - start, np = (n + L - 1) / L * L;
            const T* kt = kt_all + h * D * stride + start;
            const T* vt = vt_all + h * D * stride + start;
            T *dkl = sc.dk.data(), *dvl = sc.dv.data();
            T *p = sc.s.data(), *pk = sc.p.data(), *dp = sc.dp.data();
            std::fill(dkl, dkl + n * D, (T)0);
            std::fill(dvl, dvl + n * D, (T)0);
            for (int64_t i0 = 0; i0 < n; i0 += R) {
                const int rows = (int)std::min<int64_t>(R, n - i0);
                T q[R][D], qs[R][D], g[R][D], o[R][D], di[R];
                const int64_t row0 = start + i0;
                load_rows<T, D, R>(q, a.q + row0 * a.q_row + h * D, a.q_row, rows, (T)1);
                load_rows<T, D, R>(qs, a.q + row0 * a.q_row + h * D, a.q_row, rows, a.scale);
                load_rows<T, D, R>(g, dout + row0 * do_row + h * D, do_row, rows, (T)1);
                load_rows<T, D, R>(o, out + row0 * o_row + h * D, o_row, rows, (T)1);
                for (int r = 0; r < R; ++r) {  // D_i = dO_i . O_i
                    V acc = V{};
                    for (int k = 0; k < DV; ++k) acc += vload<V>(&g[r][k * L]) * vload<V>(&o[r][k * L]);
                    di[r] = hsum<T>(acc);
                }
                const int64_t lo_min = key_range(i0, n, a.causal, a.window).lo;
                const int64_t hi_max = key_range(i0 + rows - 1, n, a.causal, a.window).hi;
                const int64_t jb0 = lo_min / L, jb1 = (hi_max + L - 1) / L;
                // 1) p = exp(scale q k - lse), 0 outside each row's keys
                scores<T, D, R>(qs, kt, stride, jb0, jb1, p, np);
                // 2) dP = dO v^T
                scores<T, D, R>(g, vt, stride, jb0, jb1, dp, np);
                for (int r = 0; r < R; ++r) {
                    T* pr = p + r * np;
                    T* pkr = pk + r * np;
                    T* dpr = dp + r * np;
                    if (r >= rows) {
                        std::fill(pr + jb0 * L, pr + jb1 * L, (T)0);
                        std::fill(pkr + jb0 * L, pkr + jb1 * L, (T)0);
                        continue;
                    }
                    const Range kr = key_range(i0 + r, n, a.causal, a.window);
                    masked_exp<T>(pr, jb0, jb1, kr.lo, kr.hi, lse[(start + i0 + r) * a.H + h]);
                    if (a.p_drop > 0) {
                        const uint64_t base = row_base(a.seed, start + i0 + r, a.H, h);
                        for (int64_t j = jb0 * L; j < jb1 * L; ++j) {
                            const T keep = (j >= kr.lo && j < kr.hi && keep_bit(base, (uint64_t)j, drop.threshold))
                                               ? drop.scale : (T)0;
                            dpr[j] *= keep;
                            pkr[j] = pr[j] * keep;  // the weight v_j received
                        }
                    } else {
                        for (int64_t j = jb0 * L; j < jb1 * L; ++j) pkr[j] = pr[j];
                    }
                    // 3) dS = p (dP - D_i) * scale, stored over p
                    const T dr = di[r];
                    for (int64_t j = jb0 * L; j < jb1 * L; ++j) pr[j] = pr[j] * (dpr[j] - dr) * a.scale;
                }
                // 4) dV_j += sum_r p'_rj dO_r ; dK_j += sum_r dS_rj q_r ; dQ_r = sum_j dS_rj k_j
                V gq[R][DV], qv[R][DV], dqv[R][DV] = {};
                for (int r = 0; r < R; ++r)
                    for (int k = 0; k < DV; ++k) {
                        gq[r][k] = vload<V>(&g[r][k * L]);
                        qv[r][k] = vload<V>(&q[r][k * L]);
                    }
                for (int64_t j = lo_min; j < hi_max; ++j) {
                    const T* kj = a.k + (start + j) * a.k_row + h * D;
                    V kv[DV], dkv[DV], dvv[DV];
                    for (int k = 0; k < DV; ++k) {
                        kv[k] = vload<V>(kj + k * L);
                        dkv[k] = vload<V>(dkl + j * D + k * L);
                        dvv[k] = vload<V>(dvl + j * D + k * L);
                    }
#pragma GCC unroll 8
                    for (int r = 0; r < R; ++r) {
                        const T w = pk[r * np + j], e = p[r * np + j];
                        for (int k = 0; k < DV; ++k) {
                            dvv[k] += w * gq[r][k];
                            dkv[k] += e * qv[r][k];
                            dqv[r][k] += e * kv[k];
                        }
                    }
                    for (int k = 0; k < DV; ++k) {
                        vstore(dkl + j * D + k * L, dkv[k]);
                        vstore(dvl + j * D + k * L, dvv[k]);
                    }
                }
                for (int r = 0; r < rows; ++r) {
                    T* dqrow = dq + (start + i0 + r) * dq_row + h * D;
                    for (int k = 0; k < DV; ++k) vstore(dqrow + k * L, dqv[r][k]);
                }
            }
            for (int64_t j = 0; j < n; ++j) {
                std::memcpy(dk + (start + j) * dk_row + h * D, dkl + j * D, D * sizeof(T));
                std::memcpy(dv + (start + j) * dv_row + h * D, dvl + j * D, D * sizeof(T));
            }
        }
    }
}

template <typename T>
void attention_forward(const Args<T>& a, T* out, int64_t o_row, T* lse) {
    const int L = Simd<T>::L;
    if (a.d == a.dv && a.d % L == 0) {
        switch (a.d / L) {
            case 1: return attention_forward_tiled<T, Simd<T>::L>(a, out, o_row, lse);
            case 2: return attention_forward_tiled<T, 2 * Simd<T>::L>(a, out, o_row, lse);
            case 4: return attention_forward_tiled<T, 4 * Simd<T>::L>(a, out, o_row, lse);
            case 8: return attention_forward_tiled<T, 8 * Simd<T>::L>(a, out, o_row, lse);
            default: break;
        }
    }
    attention_forward_generic<T>(a, out, o_row, lse);
}

template <typename T>
void attention_backward(const Args<T>& a, const T* out, int64_t o_row, const T* dout, int64_t do_row, const T* lse,
                        T* dq, int64_t dq_row, T* dk, int64_t dk_row, T* dv, int64_t dv_row) {
    const int L = Simd<T>::L;
    if (a.d == a.dv && a.d % L == 0) {
        switch (a.d / L) {
            case 1: return attention_backward_tiled<T, Simd<T>::L>(a, out, o_row, dout, do_row, lse, dq, dq_row, dk, dk_row, dv, dv_row);
            case 2: return attention_backward_tiled<T, 2 * Simd<T>::L>(a, out, o_row, dout, do_row, lse, dq, dq_row, dk, dk_row, dv, dv_row);
            case 4: return attention_backward_tiled<T, 4 * Simd<T>::L>(a, out, o_row, dout, do_row, lse, dq, dq_row, dk, dk_row, dv, dv_row);
            case 8: return attention_backward_tiled<T, 8 * Simd<T>::L>(a, out, o_row, dout, do_row, lse, dq, dq_row, dk, dk_row, dv, dv_row);
            default: break;
        }
    }
    attention_backward_generic<T>(a, out, o_row, dout, do_row, lse, dq, dq_row, dk, dk_row, dv, dv_row);
}

// -- transpose -----------------------------------------------------------------------------
// dst (cols, rows) = src (rows, cols)^T; src rows `src_row` elements apart, dst contiguous.
template <typename T>
void transpose2d(const T* src, int64_t rows, int64_t cols, int64_t src_row, T* dst) {
    using V = typename Simd<T>::V;
    constexpr int L = Simd<T>::L;
    const int64_t rt = rows / L, ct = cols / L;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < rt; ++bi) {
        for (int64_t bj = 0; bj < ct; ++bj) {
            V v[L];
            for (int i = 0; i < L; ++i) v[i] = vload<V>(src + (bi * L + i) * src_row + bj * L);
            transpose_tile<T>(v);
            for (int i = 0; i < L; ++i) vstore(dst + (bj * L + i) * rows + bi * L, v[i]);
        }
    }
    // edges: the last rows % L rows and the last cols % L columns
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < cols; ++c) {
        const int64_t r0 = c < ct * L ? rt * L : 0;
        for (int64_t r = r0; r < rows; ++r) dst[c * rows + r] = src[r * src_row + c];
    }
}

// -- dropout ----------------------------------------------------------------------------
// Element e of a flat tensor is kept iff keep_bit(mix64(seed), e, threshold).
constexpr int64_t kChunk = 1 << 14;

template <typename T>
void dropout_apply(const T* x, T* y, int64_t numel, double p, uint64_t seed, const T* add) {
    const Dropout<T> drop(p);
    const uint64_t base = mix64(seed);
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < numel; c0 += kChunk) {
        const int64_t c1 = std::min(numel, c0 + kChunk);
        if (add) {
            for (int64_t e = c0; e < c1; ++e)
                y[e] = add[e] + (keep_bit(base, (uint64_t)e, drop.threshold) ? x[e] * drop.scale : (T)0);
        } else {
            for (int64_t e = c0; e < c1; ++e) y[e] = keep_bit(base, (uint64_t)e, drop.threshold) ? x[e] * drop.scale : (T)0;
        }
    }
}

// In place: x = relu(x) * keep / (1 - p). Its gradient only needs the result (y > 0).
template <typename T>
void relu_dropout_inplace(T* x, int64_t numel, double p, uint64_t seed) {
    const Dropout<T> drop(p);
    const uint64_t base = mix64(seed);
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < numel; c0 += kChunk) {
        const int64_t c1 = std::min(numel, c0 + kChunk);
        for (int64_t e = c0; e < c1; ++e) {
            const T v = x[e] > (T)0 ? x[e] * drop.scale : (T)0;
            x[e] = keep_bit(base, (uint64_t)e, drop.threshold) ? v : (T)0;
        }
    }
}

template <typename T>
void relu_dropout_backward(const T* y, const T* dy, T* dx, int64_t numel, double p) {
    const T keep_scale = Dropout<T>(p).scale;
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < numel; c0 += kChunk) {
        const int64_t c1 = std::min(numel, c0 + kChunk);
        for (int64_t e = c0; e < c1; ++e) dx[e] = y[e] > (T)0 ? dy[e] * keep_scale : (T)0;
    }
}

template <typename T>
Args<T> make_args(const void* q, const void* k, const void* v, int64_t q_row, int64_t k_row, int64_t v_row,
                  const int64_t* cu, int64_t B, int64_t H, int64_t d, int64_t dv, double scale, int64_t causal,
                  int64_t window, double p_drop, uint64_t seed) {
    return Args<T>{(const T*)q, (const T*)k, (const T*)v, q_row, k_row, v_row, cu, B, H, d, dv, (T)scale,
                   causal != 0, window, p_drop, seed};
}

}  // namespace

extern "C" {

int attnlab_kernels_version() { return 1; }

// dtype: 0 = float32, 1 = float64
int attnlab_attention_forward(int dtype, const void* q, const void* k, const void* v, int64_t q_row, int64_t k_row,
                              int64_t v_row, void* out, int64_t o_row, void* lse, const int64_t* cu, int64_t B,
                              int64_t H, int64_t d, int64_t dv, double scale, int64_t causal, int64_t window,
                              double p_drop, uint64_t seed) {
    if (dtype == 0) {
        auto a = make_args<float>(q, k, v, q_row, k_row, v_row, cu, B, H, d, dv, scale, causal, window, p_drop, seed);
        attention_forward<float>(a, (float*)out, o_row, (float*)lse);
    } else if (dtype == 1) {
        auto a = make_args<double>(q, k, v, q_row, k_row, v_row, cu, B, H, d, dv, scale, causal, window, p_drop, seed);
        attention_forward<double>(a, (double*)out, o_row, (double*)lse);
    } else {
        return 1;
    }
    return 0;
}

int attnlab_attention_backward(int dtype, const void* q, const void* k, const void* v, int64_t q_row, int64_t k_row,
                               int64_t v_row, const void* out, int64_t o_row, const void* dout, int64_t do_row,
                               const void* lse, void* dq, int64_t dq_row, void* dk, int64_t dk_row, void* dv_,
                               int64_t dv_row, const int64_t* cu, int64_t B, int64_t H, int64_t d, int64_t dv,
                               double scale, int64_t causal, int64_t window, double p_drop, uint64_t seed) {
    if (dtype == 0) {
        auto a = make_args<float>(q, k, v, q_row, k_row, v_row, cu, B, H, d, dv, scale, causal, window, p_drop, seed);
        attention_backward<float>(a, (const float*)out, o_row, (const float*)dout, do_row, (const float*)lse,
                                  (float*)dq, dq_row, (float*)dk, dk_row, (float*)dv_, dv_row);
    } else if (dtype == 1) {
        auto a = make_args<double>(q, k, v, q_row, k_row, v_row, cu, B, H, d, dv, scale, causal, window, p_drop, seed);
        attention_backward<double>(a, (const double*)out, o_row, (const double*)dout, do_row, (const double*)lse,
                                   (double*)dq, dq_row, (double*)dk, dk_row, (double*)dv_, dv_row);
    } else {
        return 1;
    }
    return 0;
}

// y = x * keep / (1 - p) (+ add, when add is not null)
int attnlab_dropout(int dtype, const void* x, void* y, int64_t numel, double p, uint64_t seed, const void* add) {
    if (dtype == 0) dropout_apply<float>((const float*)x, (float*)y, numel, p, seed, (const float*)add);
    else if (dtype == 1) dropout_apply<double>((const double*)x, (double*)y, numel, p, seed, (const double*)add);
    else return 1;
    return 0;
}

int attnlab_relu_dropout_(int dtype, void* x, int64_t numel, double p, uint64_t seed) {
    if (dtype == 0) relu_dropout_inplace<float>((float*)x, numel, p, seed);
    else if (dtype == 1) relu_dropout_inplace<double>((double*)x, numel, p, seed);
    else return 1;
    return 0;
}

int attnlab_relu_dropout_backward(int dtype, const void* y, const void* dy, void* dx, int64_t numel, double p) {
    if (dtype == 0) relu_dropout_backward<float>((const float*)y, (const float*)dy, (float*)dx, numel, p);
    else if (dtype == 1) relu_dropout_backward<double>((const double*)y, (const double*)dy, (double*)dx, numel, p);
    else return 1;
    return 0;
}

int attnlab_transpose(int dtype, const void* src, int64_t rows, int64_t cols, int64_t src_row, void* dst) {
    if (dtype == 0) transpose2d<float>((const float*)src, rows, cols, src_row, (float*)dst);
    else if (dtype == 1) transpose2d<double>((const double*)src, rows, cols, src_row, (double*)dst);
    else return 1;
    return 0;
}

}  // extern "C"
