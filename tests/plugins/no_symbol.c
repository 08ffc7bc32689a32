/* no_symbol.c - a shared object without the plugin descriptor symbol. */
#include "dbtd/step.h"

int not_a_plugin(void);

/* Exported so the object is not empty. */
int
not_a_plugin(void)
{
	return 42;
}
