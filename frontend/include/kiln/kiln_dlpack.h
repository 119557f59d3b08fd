/* kiln arrays as DLPack tensors and back (C99), zero-copy both ways. Separate from kiln.h,
 * which stays free of other projects' headers: this one needs <dlpack/dlpack.h> (Debian's
 * libdlpack-dev, DLPack 0.6: the legacy DLManagedTensor that NumPy 1.22 and later speak).
 *
 * Semantics (kiln.h's conventions hold too):
 *  - Only CPU memory (kDLCPU), one lane per element, and kiln's five dtypes: bool as code
 *    6 (kDLBool from DLPack 0.8, 8 bits; 0.6 has no bool), int32 and int64 as kDLInt,
 *    float32 and float64 as kDLFloat.
 *  - DLPack strides count elements, not bytes; kiln converts. NULL strides from a producer
 *    mean C-contiguous. Zero and negative strides (broadcast and reversed views) pass.
 *  - A deleter may run on any thread: whichever drops the last reference.
 *  - DLPack 0.6 has no read-only flag and consumers may write: read-only arrays (segments
 *    opened with KILN_SHM_READONLY) are not exported.
 */
#ifndef KILN_DLPACK_H
#define KILN_DLPACK_H

#include <dlpack/dlpack.h>

#include "kiln/kiln.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The DLPack code kiln gives bool elements (8 bits, one lane): DLPack 0.8's kDLBool. */
#define KILN_DLPACK_BOOL 6

/* Exports `array` as a new DLManagedTensor over the same memory (no copy). The tensor
 * holds a reference to the array: the memory stays valid until the consumer calls
 * (*tensor)->deleter(*tensor), exactly once, which frees the tensor and drops that
 * reference. The strides are always given (never NULL); byte_offset is 0. */
kiln_status kiln_array_to_dlpack(const kiln_array* array, DLManagedTensor** tensor);
/* Imports a producer's tensor as a new kiln array over the same memory (no copy). On
 * success kiln owns `tensor` and calls tensor->deleter(tensor) (when not NULL) once, when
 * its last reference to the memory drops; the caller must not use the tensor again. On
 * failure (a non-CPU device, a dtype kiln lacks, lanes != 1, a bad shape) the caller
 * still owns it and nothing was called. */
kiln_status kiln_array_from_dlpack(DLManagedTensor* tensor, kiln_array** out);

#ifdef __cplusplus
}
#endif

#endif /* KILN_DLPACK_H */
