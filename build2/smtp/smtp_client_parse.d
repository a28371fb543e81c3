build2/smtp/smtp_client_parse.o: src/smtp/smtp_client_parse.c \
 src/smtp/smtp_client_parse.h src/core/buf.h src/core/str.h
src/smtp/smtp_client_parse.h:
src/core/buf.h:
src/core/str.h:
