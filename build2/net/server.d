build2/net/server.o: src/net/server.c src/net/server.h src/core/worker.h \
 src/auth/auth_ctx.h src/auth/ratelimit.h src/auth/throttle.h \
 src/core/config.h src/core/dict.h src/core/log.h src/core/version.h \
 src/net/tls.h src/net/zfilter.h src/store/store.h
src/net/server.h:
src/core/worker.h:
src/auth/auth_ctx.h:
src/auth/ratelimit.h:
src/auth/throttle.h:
src/core/config.h:
src/core/dict.h:
src/core/log.h:
src/core/version.h:
src/net/tls.h:
src/net/zfilter.h:
src/store/store.h:
