build2/serve.o: src/serve.c src/serve.h src/auth/sasl.h src/core/config.h \
 src/delivery/queue_runner.h src/imap/imap_session.h src/net/server.h \
 src/core/worker.h src/net/server.h src/pop3/pop3_session.h \
 src/smtp/smtp_session.h
src/serve.h:
src/auth/sasl.h:
src/core/config.h:
src/delivery/queue_runner.h:
src/imap/imap_session.h:
src/net/server.h:
src/core/worker.h:
src/net/server.h:
src/pop3/pop3_session.h:
src/smtp/smtp_session.h:
