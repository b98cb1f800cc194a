/* The reference for `geogate lookup` end to end: what an admin would write in C
 * over libmaxminddb. Reads addresses from stdin, one a line, and prints "IP CC"
 * ("--" for none), like `geogate lookup`. Built by Benchmarks/run.sh:
 *   cc -O2 -o mmdb-lookup mmdb-lookup.c -lmaxminddb
 *   mmdb-lookup DB.mmdb < addresses > answers
 */
#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DB.mmdb < addresses\n", argv[0]);
        return 2;
    }
    MMDB_s db;
    int status = MMDB_open(argv[1], MMDB_MODE_MMAP, &db);
    if (status != MMDB_SUCCESS) {
        fprintf(stderr, "%s: %s\n", argv[1], MMDB_strerror(status));
        return 2;
    }
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    int bad = 0;
    while ((length = getline(&line, &capacity, stdin)) > 0) {
        if (line[length - 1] == '\n') line[--length] = 0;
        if (length == 0) continue;
        int gai_error, mmdb_error;
        MMDB_lookup_result_s result = MMDB_lookup_string(&db, line, &gai_error, &mmdb_error);
        if (gai_error != 0 || mmdb_error != MMDB_SUCCESS) {
            fprintf(stderr, "not an IP address: '%s'\n", line);
            bad = 1;
            continue;
        }
        MMDB_entry_data_s data;
        if (result.found_entry &&
            MMDB_get_value(&result.entry, &data, "country", "iso_code", NULL) == MMDB_SUCCESS &&
            data.has_data && data.type == MMDB_DATA_TYPE_UTF8_STRING && data.data_size == 2) {
            printf("%s %.2s\n", line, data.utf8_string);
        } else {
            printf("%s --\n", line);
        }
    }
    free(line);
    MMDB_close(&db);
    return bad;
}
