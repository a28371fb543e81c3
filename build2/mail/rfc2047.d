build2/mail/rfc2047.o: src/mail/rfc2047.c src/mail/rfc2047.h \
 src/core/buf.h src/core/base64.h src/core/str.h src/mail/text.h
src/mail/rfc2047.h:
src/core/buf.h:
src/core/base64.h:
src/core/str.h:
src/mail/text.h:
