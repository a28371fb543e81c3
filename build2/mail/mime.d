build2/mail/mime.o: src/mail/mime.c src/mail/mime.h src/core/buf.h \
 src/core/str.h src/mail/address.h
src/mail/mime.h:
src/core/buf.h:
src/core/str.h:
src/mail/address.h:
