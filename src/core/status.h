// Status and Result<T> are part of the public API: include/kvcached/status.h.
#pragma once
#include "kvcached/status.h"
