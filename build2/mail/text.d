build2/mail/text.o: src/mail/text.c src/mail/text.h src/core/buf.h \
 src/core/base64.h src/core/str.h
src/mail/text.h:
src/core/buf.h:
src/core/base64.h:
src/core/str.h:
