/* json.c - whole numbers from cJSON values, without undefined casts. */
#include "json.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>

int dfs_json_int(const cJSON *v, int *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= INT_MIN && d <= INT_MAX) || d != floor(d)) return 0;
    *out = (int)d;
    return 1;
}
