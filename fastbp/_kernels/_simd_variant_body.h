/* Included by _simd_variants.h once per variant, with FB_SUFFIX and FASTBP_CLONES
 * set: the optimizer and _vmath bodies of both dtypes under that suffix. */
#define FB_T float
#define FB_SQRT sqrtf
#define FB_NAME(x) FB_CAT(x##_f32, FB_SUFFIX)
#define FB_F32_BODY 1
#include "_optim_body.h"
#include "_vmath_body.h"
#undef FB_F32_BODY
#undef FB_T
#undef FB_SQRT
#undef FB_NAME
#define FB_T double
#define FB_SQRT sqrt
#define FB_NAME(x) FB_CAT(x##_f64, FB_SUFFIX)
#include "_optim_body.h"
#include "_vmath_body.h"
#undef FB_T
#undef FB_SQRT
#undef FB_NAME
