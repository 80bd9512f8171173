#ifndef TOLLGATE_CHIREDIS_SHIM_H
#define TOLLGATE_CHIREDIS_SHIM_H
// Tollgate uses hiredis's I/O-free protocol layer only (redisFormatCommandArgv, redisReader*):
// the socket belongs to a NIO event loop (TollgateRedis/RedisLink.swift). Those functions are
// not variadic, so no wrappers are needed.
#include <hiredis/hiredis.h>
#endif
