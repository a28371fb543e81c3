/* libFuzzer target for the config parser: arbitrary bytes as a config file.
 * Any input must give either a config or a "FILE:LINE: message" error, without
 * crashing or leaking. */
#include "core/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	char *err = NULL;
	int ret = config_load_string("fuzz.conf", (const char *)data, size, &cfg, &err);
	if (ret == 1) {
		if (cfg == NULL || err != NULL || cfg->data_dir == NULL || cfg->hostname == NULL)
			abort();
	} else {
		if (ret != -1 || cfg != NULL)
			abort();
		/* every error names the file */
		if (err != NULL && strncmp(err, "fuzz.conf:", 10) != 0)
			abort();
	}
	free(err);
	config_free(&cfg);
	return 0;
}
