/* json.h - reading numbers from the JSON that checkpoints, vocabularies and classifiers carry
 * (cJSON). Not public API. */
#ifndef DFS_IO_JSON_H
#define DFS_IO_JSON_H

/* A JSON number that is a whole number in int's range into *out: 1, else 0 (nothing cast
 * out of range, so a crafted header such as "max_len": 1e300 is refused, not undefined). For every
 * reader of that JSON. */
struct cJSON;
int dfs_json_int(const struct cJSON *v, int *out);

#endif
