build2/mail/envelope.o: src/mail/envelope.c src/mail/envelope.h \
 src/core/buf.h src/mail/addrlist.h src/mail/mime.h
src/mail/envelope.h:
src/core/buf.h:
src/mail/addrlist.h:
src/mail/mime.h:
