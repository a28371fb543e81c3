build2/smtp/smtp_rcpt.o: src/smtp/smtp_rcpt.c src/auth/ratelimit.h \
 src/core/log.h src/delivery/srs.h src/net/line_session.h \
 src/smtp/smtp_session_int.h src/core/buf.h src/core/worker.h \
 src/mail/header.h src/net/server.h src/smtp/smtp_parse.h \
 src/mail/address.h src/store/store.h
src/auth/ratelimit.h:
src/core/log.h:
src/delivery/srs.h:
src/net/line_session.h:
src/smtp/smtp_session_int.h:
src/core/buf.h:
src/core/worker.h:
src/mail/header.h:
src/net/server.h:
src/smtp/smtp_parse.h:
src/mail/address.h:
src/store/store.h:
