#ifndef GEOGATE_LIBFUZZER_DRIVER_H
#define GEOGATE_LIBFUZZER_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry for programs with their own main (LLVM 12 and later), in the
   toolchain's libclang_rt.fuzzer: the fuzz build's main calls it, since SwiftPM
   gives every executable a main of its own. Only referenced when built with
   -sanitize=fuzzer (GEOGATE_FUZZING). */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
