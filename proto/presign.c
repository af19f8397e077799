#include "presign.h"
