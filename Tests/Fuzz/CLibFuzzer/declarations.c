/* The target holds only the header's declaration; SwiftPM wants one source file. */
#include "libfuzzer_driver.h"
