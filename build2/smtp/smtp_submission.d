build2/smtp/smtp_submission.o: src/smtp/smtp_submission.c \
 src/mail/header.h src/core/buf.h src/smtp/smtp_session_int.h \
 src/core/worker.h src/net/server.h src/smtp/smtp_parse.h \
 src/mail/address.h src/store/store.h
src/mail/header.h:
src/core/buf.h:
src/smtp/smtp_session_int.h:
src/core/worker.h:
src/net/server.h:
src/smtp/smtp_parse.h:
src/mail/address.h:
src/store/store.h:
