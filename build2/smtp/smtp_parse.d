build2/smtp/smtp_parse.o: src/smtp/smtp_parse.c src/smtp/smtp_parse.h \
 src/core/buf.h src/mail/address.h src/core/str.h
src/smtp/smtp_parse.h:
src/core/buf.h:
src/mail/address.h:
src/core/str.h:
