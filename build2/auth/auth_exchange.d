build2/auth/auth_exchange.o: src/auth/auth_exchange.c \
 src/auth/auth_exchange.h src/auth/sasl.h src/auth/auth_ctx.h \
 src/core/worker.h src/auth/throttle.h src/core/base64.h src/core/log.h \
 src/net/server.h
src/auth/auth_exchange.h:
src/auth/sasl.h:
src/auth/auth_ctx.h:
src/core/worker.h:
src/auth/throttle.h:
src/core/base64.h:
src/core/log.h:
src/net/server.h:
