build2/smtp/smtp_session.o: src/smtp/smtp_session.c \
 src/smtp/smtp_session.h src/net/server.h src/core/worker.h \
 src/smtp/smtp_session_int.h src/core/buf.h src/mail/header.h \
 src/smtp/smtp_parse.h src/mail/address.h src/store/store.h \
 src/auth/auth_exchange.h src/auth/sasl.h src/auth/ratelimit.h \
 src/auth/throttle.h src/core/base64.h src/core/config.h src/core/log.h \
 src/net/line_session.h src/net/tls.h
src/smtp/smtp_session.h:
src/net/server.h:
src/core/worker.h:
src/smtp/smtp_session_int.h:
src/core/buf.h:
src/mail/header.h:
src/smtp/smtp_parse.h:
src/mail/address.h:
src/store/store.h:
src/auth/auth_exchange.h:
src/auth/sasl.h:
src/auth/ratelimit.h:
src/auth/throttle.h:
src/core/base64.h:
src/core/config.h:
src/core/log.h:
src/net/line_session.h:
src/net/tls.h:
