/*
 * lib_dlroot.c — a shared object loaded with dlopen by test_roots: objects
 * whose only reference is in this library's data or bss must survive.
 *
 * The library needs nothing from cgc: the test stores into the slots through
 * the addresses returned here, with CGC_STORE in the executable.
 */
#include <stddef.h>

#define EXPORT __attribute__((visibility("default")))

static void *bss_slot;                                   /* .bss */
static struct { long tag; void *ptr; long pad[5]; } data_slot = {0x646c726f6f74, NULL, {1, 2, 3, 4, 5}}; /* .data */
static void *bss_array[4096];                            /* a larger .bss */

EXPORT void **dlroot_bss_slot(void) { return &bss_slot; }
EXPORT void **dlroot_data_slot(void) { return &data_slot.ptr; }
EXPORT void **dlroot_array_slot(size_t i) { return &bss_array[i % 4096]; }
EXPORT long dlroot_tag(void) { return data_slot.tag; }
