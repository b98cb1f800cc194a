#include "geogate_support.h"
