# Reference values for galley's missing-value tests (tests/suite/missing.rs).
# Therneau & Grambsch (2000), appendix E, data set 1: seven subjects, one with an unknown status.
# The survival package checks its Cox code against the hand computation of this data set
# (survival/tests/book1.R). R drops the row with the missing status whether the event is given as
# the column or as the expression `status == 1` (NA == 1 is NA).
# Run: Rscript therneau_book1.R > therneau_book1.json   (R version 4.2.2 Patched (2022-11-10 r83330), survival 3.5.3, Debian's packages)
suppressMessages(library(survival))
library(jsonlite)
test1 <- data.frame(time   = c(9, 3, 1, 1, 6, 6, 8),
                    status = c(1, NA, 1, 0, 1, 1, 0),
                    x      = c(0, 2, 1, 1, 1, 0, 0))
write.csv(test1, "therneau_book1.csv", row.names = FALSE, na = "")
fit_case <- function(formula, ties) {
  f <- coxph(formula, data = test1, ties = ties, eps = 1e-10, iter.max = 50)
  list(n = f$n, events = f$nevent, coef = unname(coef(f)), se = unname(sqrt(diag(f$var))),
       loglik = f$loglik, n_dropped = length(f$na.action),
       `_r_call` = paste0("coxph(", deparse(formula), ", data = test1, ties = \"", ties, "\")"))
}
out <- list(
  breslow_column = fit_case(Surv(time, status) ~ x, "breslow"),
  breslow_expression = fit_case(Surv(time, status == 1) ~ x, "breslow"),
  efron_column = fit_case(Surv(time, status) ~ x, "efron"),
  efron_expression = fit_case(Surv(time, status == 1) ~ x, "efron"),
  # The closed form of the Breslow estimate (the score 2 - r/(r+1) - 2r/(r+3) = 0, r = exp(beta)).
  breslow_closed_form = log((3 + sqrt(33)) / 2),
  # Kaplan-Meier and log-rank on the same data (by x >= 1): the NA row is dropped there too.
  km = local({
    f <- survfit(Surv(time, status == 1) ~ 1, data = test1)
    list(n = f$n, time = f$time, surv = f$surv, n_risk = f$n.risk)
  }),
  logrank = local({
    d <- survdiff(Surv(time, status == 1) ~ I(x >= 1), data = test1)
    list(n = sum(d$n), chisq = d$chisq, observed = unname(d$obs), expected = unname(d$exp))
  })
)
cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "\n")
