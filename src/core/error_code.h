// The error codes are part of the public API: include/kvcached/error_code.h.
#pragma once
#include "kvcached/error_code.h"
