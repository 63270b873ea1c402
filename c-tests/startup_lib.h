/* startup_lib.h — interface between startup.c and startup_lib.c. */
#ifndef STARTUP_LIB_H
#define STARTUP_LIB_H

#define STARTUP_LIB_MESSAGE "allocated by startup_lib's constructor before main"

/* 1 if the constructor's allocations (own thread and a helper thread) all worked, 0 if
 * one failed, -1 if the constructor did not run. */
int startup_lib_constructor_result(void);

/* The malloc'd message; the caller frees it. NULL on the second call. */
char *startup_lib_take_message(void);

#endif
