build2/pop3/pop3_session.o: src/pop3/pop3_session.c \
 src/pop3/pop3_session.h src/net/server.h src/core/worker.h \
 src/auth/auth_exchange.h src/auth/sasl.h src/core/buf.h \
 src/core/config.h src/core/log.h src/net/line_session.h src/net/tls.h \
 src/pop3/pop3_lock.h src/pop3/pop3_parse.h src/store/blob.h \
 src/store/store.h
src/pop3/pop3_session.h:
src/net/server.h:
src/core/worker.h:
src/auth/auth_exchange.h:
src/auth/sasl.h:
src/core/buf.h:
src/core/config.h:
src/core/log.h:
src/net/line_session.h:
src/net/tls.h:
src/pop3/pop3_lock.h:
src/pop3/pop3_parse.h:
src/store/blob.h:
src/store/store.h:
