# Reference results for the turnout models, computed in R independently of the project's Python code.
#
# Reads  tests/reference/inputs/regional_2021.csv and tests/reference/inputs/races_simulated.csv
# Writes tests/reference/results/*.json (numbers printed with 17 significant digits, so they read back exactly).
#
# Run from the project root:  Rscript tests/reference/generate.R   (or `make reference`, which first checks with
# tests/reference/check_r.py that R has every package loaded below). Needs Debian's r-base-core and the r-cran-*
# package of each library() call below: r-cran-sandwich, r-cran-geepack, r-cran-lme4, r-cran-jsonlite, r-cran-mass
# and r-cran-numderiv. Beta regression is fitted by maximum likelihood
# written out below (betareg is not packaged by Debian); its clustered covariance still goes through
# sandwich::vcovCL.
#
# Term names are written in the project's (patsy-like) spelling: Intercept, C(region)[T.<level>],
# np.log(n_candidates). Covariance matrices are written row by row in the order of "terms".

suppressPackageStartupMessages({
  library(sandwich)
  library(geepack)
  library(lme4)
  library(jsonlite)
  library(MASS)
  library(numDeriv)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
ref_dir <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg))) else "tests/reference"
input_dir <- file.path(ref_dir, "inputs")
out_dir <- file.path(ref_dir, "results")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

# --------------------------------------------------------------------------------------------------------------
# JSON helpers: every number with 17 significant digits (jsonlite's own digits = NA stops at 15).
# --------------------------------------------------------------------------------------------------------------

num_text <- function(x) ifelse(is.finite(x), sprintf("%.17g", x), "null")
vec <- function(x) structure(paste0("[", paste(num_text(as.numeric(x)), collapse = ","), "]"), class = "json")
scalar <- function(x) structure(num_text(as.numeric(x)), class = "json")
mat <- function(m) lapply(seq_len(nrow(m)), function(i) vec(m[i, ]))

write_result <- function(x, name) {
  x <- c(list(meta = META), x)
  text <- toJSON(x, auto_unbox = TRUE, json_verbatim = TRUE, pretty = TRUE, null = "null", na = "null")
  writeLines(text, file.path(out_dir, name))
  cat("wrote", file.path(out_dir, name), "\n")
}

package_version_text <- function(p) as.character(utils::packageVersion(p))
META <- list(
  generated_by = "tests/reference/generate.R",
  r_version = R.version.string,
  platform = R.version$platform,
  lapack = La_version(),
  blas = sessionInfo()$BLAS,
  packages = setNames(lapply(c("sandwich", "geepack", "lme4", "jsonlite", "MASS", "numDeriv", "Matrix", "minqa"),
                             package_version_text),
                      c("sandwich", "geepack", "lme4", "jsonlite", "MASS", "numDeriv", "Matrix", "minqa")),
  inputs_md5 = as.list(setNames(unname(tools::md5sum(file.path(input_dir, c("regional_2021.csv", "races_simulated.csv")))),
                                c("regional_2021.csv", "races_simulated.csv")))
)

# --------------------------------------------------------------------------------------------------------------
# Inference helpers
# --------------------------------------------------------------------------------------------------------------

project_names <- function(nm) {
  nm <- sub("^\\(Intercept\\)$", "Intercept", nm)
  nm <- sub("^region(.+)$", "C(region)[T.\\1]", nm)
  sub("^log\\((.+)\\)$", "np.log(\\1)", nm)
}

# Estimates, SEs, two-sided p-values and 95 % CIs from a covariance; t with df, normal when df is NULL.
inference <- function(est, V, df = NULL, alpha = 0.05) {
  se <- sqrt(diag(V))
  stat <- est / se
  if (is.null(df)) {
    q <- qnorm(1 - alpha / 2); p <- 2 * pnorm(-abs(stat))
  } else {
    q <- qt(1 - alpha / 2, df); p <- 2 * pt(-abs(stat), df)
  }
  list(terms = project_names(names(est)), estimate = unname(est), std_error = unname(se),
       ci_lower = unname(est - q * se), ci_upper = unname(est + q * se), p_value = unname(p))
}

coef_table <- function(est, V, df = NULL, alpha = 0.05) {
  x <- inference(est, V, df, alpha)
  list(terms = I(x$terms), estimate = vec(x$estimate), std_error = vec(x$std_error), ci_lower = vec(x$ci_lower),
       ci_upper = vec(x$ci_upper), p_value = vec(x$p_value), df = if (is.null(df)) NULL else scalar(df),
       distribution = if (is.null(df)) "normal" else "t", cov = mat(V))
}

# --------------------------------------------------------------------------------------------------------------
# Inputs, and the numbers exactly as R parsed them (the tests check Python parses the same doubles)
# --------------------------------------------------------------------------------------------------------------

regional <- read.csv(file.path(input_dir, "regional_2021.csv"), stringsAsFactors = FALSE, na.strings = "")
races <- read.csv(file.path(input_dir, "races_simulated.csv"), stringsAsFactors = FALSE)
stopifnot(nrow(races) == 730, length(unique(races$region)) == 14)

write_result(list(
  regional_2021 = lapply(regional[c("turnout_pct", "cands_per_seat", "self_share", "voters_on_rolls", "posts")], vec),
  races_simulated = list(self_share = vec(races$self_share), voted = vec(races$voted),
                         registered = vec(races$registered))
), "inputs_as_read.json")

# --------------------------------------------------------------------------------------------------------------
# 1. Regional fractional logit: quasibinomial GLM on turnout_pct / 100, optional var weights rescaled to mean 1,
#    HC0 / HC1 / HC3 sandwich covariances (sandwich::vcovHC), t inference with n - k df.
# --------------------------------------------------------------------------------------------------------------

glm_tight <- glm.control(epsilon = 1e-14, maxit = 100)

fit_regional <- function(d, predictors, weight = NULL) {
  d <- d[complete.cases(d[, c("turnout_pct", predictors, weight)]), , drop = FALSE]
  d$share <- d$turnout_pct / 100
  d$w_ <- if (is.null(weight)) rep(1, nrow(d)) else d[[weight]] / mean(d[[weight]])
  if (nrow(d) <= length(predictors) + 1) return(list(data = d, fit = NULL))
  fit <- glm(reformulate(predictors, "share"), family = quasibinomial(), data = d, weights = w_, control = glm_tight)
  list(data = d, fit = fit)
}

REGIONAL_MODELS <- list(
  main_unweighted = list(predictors = "cands_per_seat", weight = NULL),
  main_weighted = list(predictors = "cands_per_seat", weight = "voters_on_rolls"),
  mix_unweighted = list(predictors = c("cands_per_seat", "self_share"), weight = NULL),
  mix_weighted = list(predictors = c("cands_per_seat", "self_share"), weight = "voters_on_rolls")
)

regional_fits <- list()
regional_out <- list()
for (name in names(REGIONAL_MODELS)) {
  spec <- REGIONAL_MODELS[[name]]
  rf <- fit_regional(regional, spec$predictors, spec$weight)
  entry <- list(predictors = I(spec$predictors), weight = spec$weight, regions = I(rf$data$region),
                n_obs = nrow(rf$data))
  if (is.null(rf$fit)) {
    entry$identified <- FALSE
  } else {
    regional_fits[[name]] <- rf
    k <- length(coef(rf$fit))
    entry$identified <- TRUE
    entry$converged <- rf$fit$converged
    entry$max_leverage <- scalar(max(hatvalues(rf$fit)))
    entry$cov_types <- lapply(c(HC0 = "HC0", HC1 = "HC1", HC3 = "HC3"), function(type)
      coef_table(coef(rf$fit), vcovHC(rf$fit, type = type), df = nrow(rf$data) - k))
  }
  regional_out[[name]] <- entry
}

# 2. Leave one region out (HC3, the project's default), main term = first predictor.
leave_one_out <- function(spec) {
  full <- fit_regional(regional, spec$predictors, spec$weight)
  term <- spec$predictors[1]
  rows <- lapply(full$data$region, function(region) {
    rf <- fit_regional(regional[regional$region != region, ], spec$predictors, spec$weight)
    bad <- function(status) list(dropped_region = region, status = status, estimate = NA, std_error = NA,
                                 ci_lower = NA, ci_upper = NA, p_value = NA)
    if (is.null(rf$fit)) return(bad("too few rows for the parameters"))
    if (max(hatvalues(rf$fit)) >= 1 - 1e-10) return(bad("HC3 undefined: an observation has leverage 1"))
    tab <- inference(coef(rf$fit), vcovHC(rf$fit, type = "HC3"), df = nrow(rf$data) - length(coef(rf$fit)))
    i <- which(tab$terms == term)
    list(dropped_region = region, status = "ok", estimate = tab$estimate[i], std_error = tab$std_error[i],
         ci_lower = tab$ci_lower[i], ci_upper = tab$ci_upper[i], p_value = tab$p_value[i],
         df = nrow(rf$data) - length(coef(rf$fit)))
  })
  column <- function(key) vec(sapply(rows, function(r) if (is.null(r[[key]])) NA else r[[key]]))
  list(term = term, full_estimate = scalar(coef(full$fit)[[term]]),
       dropped_region = I(sapply(rows, `[[`, "dropped_region")), status = I(sapply(rows, `[[`, "status")),
       estimate = column("estimate"), std_error = column("std_error"), ci_lower = column("ci_lower"),
       ci_upper = column("ci_upper"), p_value = column("p_value"), df = column("df"))
}

# 3. Average marginal effects (percentage points) of the logit mean, delta method with a numDeriv jacobian.
#    AME_k = sum_i w_i mu_i (1 - mu_i) b_k / sum_i w_i (derivative with respect to design column k).
ame_table <- function(X, beta, V, terms, weights = NULL, df = NULL, alpha = 0.05) {
  w <- if (is.null(weights)) rep(1, nrow(X)) else weights
  idx <- match(terms, colnames(X))
  ame <- function(b) {
    mu <- plogis(drop(X %*% b))
    sum(w * mu * (1 - mu)) / sum(w) * b[idx]
  }
  est <- ame(beta)
  J <- jacobian(ame, beta, method = "Richardson")
  # analytic gradient as a check on the numerical jacobian (not written out)
  mu <- plogis(drop(X %*% beta)); dens <- mu * (1 - mu)
  curv <- colSums(X * (w * dens * (1 - 2 * mu))) / sum(w)
  J_exact <- t(sapply(seq_along(idx), function(j) { g <- beta[idx[j]] * curv; g[idx[j]] <- g[idx[j]] + sum(w * dens) / sum(w); g }))
  stopifnot(max(abs(J - J_exact)) < 1e-8 * max(1, max(abs(J_exact))))
  se <- sqrt(diag(J %*% V %*% t(J)))
  q <- if (is.null(df)) qnorm(1 - alpha / 2) else qt(1 - alpha / 2, df)
  p <- if (is.null(df)) 2 * pnorm(-abs(est / se)) else 2 * pt(-abs(est / se), df)
  list(terms = I(project_names(terms)), ame_pp = vec(100 * est), std_error_pp = vec(100 * se),
       ci_lower_pp = vec(100 * (est - q * se)), ci_upper_pp = vec(100 * (est + q * se)), p_value = vec(p),
       averaging = if (is.null(weights)) "unweighted" else "weighted", df = if (is.null(df)) NULL else scalar(df),
       max_abs_jacobian_diff_numderiv_vs_analytic = scalar(max(abs(J - J_exact))))
}

regional_ame <- function(name, averaging_weight = NULL) {
  rf <- regional_fits[[name]]
  X <- model.matrix(rf$fit)
  terms <- setdiff(colnames(X), "(Intercept)")
  w <- if (is.null(averaging_weight)) NULL else rf$data[[averaging_weight]]
  c(list(model = name, cov_type = "HC3", averaging_weight = averaging_weight),
    ame_table(X, coef(rf$fit), vcovHC(rf$fit, type = "HC3"), terms, w, df = nrow(X) - ncol(X)))
}

# 4. Prediction curve: 100 * plogis(b0 + b1 x) on 60 points from the smallest to the largest cands_per_seat of
#    the regional table, band from the HC3 covariance on the logit scale with t(n - k).
prediction_curve <- function(name, term = "cands_per_seat", n_grid = 60, alpha = 0.05) {
  rf <- regional_fits[[name]]
  V <- vcovHC(rf$fit, type = "HC3")
  grid <- seq(min(regional[[term]], na.rm = TRUE), max(regional[[term]], na.rm = TRUE), length.out = n_grid)
  D <- cbind(1, grid)
  eta <- drop(D %*% coef(rf$fit))
  se <- sqrt(rowSums((D %*% V) * D))
  q <- qt(1 - alpha / 2, nrow(rf$data) - 2)
  list(model = name, term = term, cov_type = "HC3", x = vec(grid), fit = vec(100 * plogis(eta)),
       lower = vec(100 * plogis(eta - q * se)), upper = vec(100 * plogis(eta + q * se)))
}

write_result(list(
  fits = regional_out,
  leave_one_out = lapply(REGIONAL_MODELS[c("main_unweighted", "main_weighted", "mix_unweighted")], leave_one_out),
  average_marginal_effects = list(
    main_unweighted = regional_ame("main_unweighted"),
    main_unweighted_posts = regional_ame("main_unweighted", "posts"),
    main_weighted = regional_ame("main_weighted"),
    main_weighted_voters = regional_ame("main_weighted", "voters_on_rolls"),
    mix_unweighted = regional_ame("mix_unweighted"),
    mix_unweighted_posts = regional_ame("mix_unweighted", "posts")
  ),
  prediction_curve = list(main_unweighted = prediction_curve("main_unweighted"),
                          main_weighted = prediction_curve("main_weighted"))
), "regional.json")

# --------------------------------------------------------------------------------------------------------------
# Race level. Regions as a factor with levels in byte order (as the project's sorted() does); rows kept in file
# order, which is grouped by region (geepack needs contiguous clusters).
# --------------------------------------------------------------------------------------------------------------

races$region <- factor(races$region, levels = sort(unique(races$region), method = "radix"))
races$rid <- as.integer(races$region)
stopifnot(!is.unsorted(races$rid))
races$share <- races$voted / races$registered
G <- nlevels(races$region)
FE_RHS <- "region + log(n_candidates) + self_share + any_woman"
MIX_RHS <- "log(n_candidates) + self_share + any_woman"
MIX_TERMS <- c("log(n_candidates)", "self_share", "any_woman")

# 5. Binomial GLM on counts with region fixed effects. Clustered covariance: sandwich::vcovCL(type = "HC1",
#    cadjust = TRUE) = G / (G - 1) * (N - 1) / (N - K) times the plain cluster sandwich, which is statsmodels'
#    cov_type="cluster" correction; t inference with G - 1 df. Naive fit: model-based covariance, normal.
race_glm <- glm(as.formula(paste("cbind(voted, registered - voted) ~", FE_RHS)), family = binomial(), data = races,
                control = glm_tight)
V_cl <- vcovCL(race_glm, cluster = ~region, type = "HC1", cadjust = TRUE)
N <- nrow(races); K <- length(coef(race_glm))
V_cl0 <- vcovCL(race_glm, cluster = ~region, type = "HC0", cadjust = FALSE)
stopifnot(max(abs(V_cl - V_cl0 * G / (G - 1) * (N - 1) / (N - K))) < 1e-12 * max(abs(V_cl)))
X_glm <- model.matrix(race_glm)

write_result(list(
  formula = FE_RHS,
  n_obs = N, n_clusters = G,
  small_sample_factor = scalar(G / (G - 1) * (N - 1) / (N - K)),
  pearson_dispersion = scalar(sum(residuals(race_glm, type = "pearson")^2) / df.residual(race_glm)),
  cluster = coef_table(coef(race_glm), V_cl, df = G - 1),
  naive = coef_table(coef(race_glm), vcov(race_glm)),
  average_marginal_effects = list(
    unweighted = ame_table(X_glm, coef(race_glm), V_cl, MIX_TERMS, NULL, df = G - 1),
    electorate_weighted = ame_table(X_glm, coef(race_glm), V_cl, MIX_TERMS, races$registered, df = G - 1)
  )
), "race_glm.json")

# --------------------------------------------------------------------------------------------------------------
# 6. GEE, binomial (logit) on the turnout share, exchangeable working correlation within region.
#
# geepack and statsmodels estimate the common correlation differently (moment estimators on Pearson residuals
# r_ij = (y_ij - mu_ij) / sqrt(mu_ij (1 - mu_ij)), P = sum_g n_g (n_g - 1) / 2 pairs, p mean parameters):
#   geepack:     phi = sum r^2 / N,        alpha = sum_{pairs} r_ij r_ik / (phi P)
#   statsmodels: phi = sum r^2 / (N - p),  alpha = sum_{pairs} r_ij r_ik / (phi (P - p))
# "geepack" below is geeglm's own fit; "statsmodels_alpha" solves the same estimating equations with geepack but
# with the correlation fixed (corstr = "fixed") at the statsmodels estimator, iterated to a joint fixed point.
# --------------------------------------------------------------------------------------------------------------

gee_ctl <- geese.control(epsilon = 1e-13, maxit = 500)
pairs_total <- sum(table(races$rid) * (table(races$rid) - 1) / 2)

pearson_sums <- function(mu, y, rid) {
  r <- (y - mu) / sqrt(mu * (1 - mu))
  s <- tapply(r, rid, sum); ss <- tapply(r^2, rid, sum)
  list(ssr = sum(r^2), cross = sum((s^2 - ss) / 2))
}
alpha_statsmodels <- function(mu, p) {
  s <- pearson_sums(mu, races$share, races$rid)
  phi <- s$ssr / (N - p)
  s$cross / (phi * (pairs_total - p))
}
alpha_geepack <- function(mu) {
  s <- pearson_sums(mu, races$share, races$rid)
  s$cross / (s$ssr / N * pairs_total)
}

gee_fixed <- function(f, alpha) {
  suppressWarnings(geeglm(f, family = binomial(), data = races, id = rid, corstr = "fixed",
                          zcor = rep(alpha, pairs_total), control = gee_ctl))
}

# Working-model pieces of a GEE fit at (beta, alpha): per cluster D_g, V_g (scale 1), residuals.
gee_parts <- function(X, beta, alpha) {
  mu <- plogis(drop(X %*% beta))
  lapply(split(seq_len(nrow(X)), races$rid), function(i) {
    a <- sqrt(mu[i] * (1 - mu[i]))
    R <- matrix(alpha, length(i), length(i)); diag(R) <- 1
    list(D = X[i, , drop = FALSE] * (mu[i] * (1 - mu[i])), V = outer(a, a) * R, r = races$share[i] - mu[i])
  })
}

# Mancl-DeRouen (2001) bias-reduced covariance: B^-1 (sum_g D_g' V_g^-1 A_g r_g r_g' A_g' V_g^-1 D_g) B^-1 with
# B = sum_g D_g' V_g^-1 D_g, H_gg = D_g B^-1 D_g' V_g^-1 and A_g = (I - H_gg)^-1, or its Moore-Penrose inverse
# (MASS::ginv, relative tolerance sqrt(.Machine$double.eps)) when generalized = TRUE.
mancl_derouen <- function(parts, generalized) {
  B <- Reduce(`+`, lapply(parts, function(g) crossprod(g$D, solve(g$V, g$D))))
  Binv <- solve(B)
  smallest <- second <- numeric(0)
  meat <- Reduce(`+`, lapply(parts, function(g) {
    Vinv <- solve(g$V)
    M <- diag(nrow(g$D)) - g$D %*% Binv %*% t(g$D) %*% Vinv
    d <- sort(svd(M)$d) / max(svd(M)$d)
    smallest <<- c(smallest, d[1]); second <<- c(second, d[2])
    A <- if (generalized) ginv(M) else solve(M)
    s <- t(g$D) %*% Vinv %*% A %*% g$r
    s %*% t(s)
  }))
  list(cov = Binv %*% meat %*% Binv, smallest_relative_singular_value = smallest,
       second_smallest_relative_singular_value = second)
}

robust_gee_cov <- function(parts) {
  B <- Reduce(`+`, lapply(parts, function(g) crossprod(g$D, solve(g$V, g$D))))
  meat <- Reduce(`+`, lapply(parts, function(g) { s <- t(g$D) %*% solve(g$V, g$r); s %*% t(s) }))
  solve(B) %*% meat %*% solve(B)
}

gee_reference <- function(rhs) {
  f <- as.formula(paste("share ~", rhs))
  native <- suppressWarnings(geeglm(f, family = binomial(), data = races, id = rid, corstr = "exchangeable",
                                    control = gee_ctl))
  X <- model.matrix(native)
  p <- ncol(X)
  # statsmodels' correlation estimator, iterated with geepack's beta to a joint fixed point
  alpha <- 0
  for (it in 1:200) {
    fit <- gee_fixed(f, alpha)
    new_alpha <- alpha_statsmodels(plogis(drop(X %*% coef(fit))), p)
    if (abs(new_alpha - alpha) < 1e-15) break
    alpha <- new_alpha
  }
  fit <- gee_fixed(f, alpha)
  beta <- coef(fit)
  parts <- gee_parts(X, beta, alpha)
  ee <- Reduce(`+`, lapply(parts, function(g) crossprod(g$D, solve(g$V, g$r))))
  V_robust_hand <- robust_gee_cov(parts)
  stopifnot(max(abs(V_robust_hand - vcov(fit))) < 1e-10 * max(abs(vcov(fit))))
  md_solve <- if (grepl("region", rhs)) NULL else mancl_derouen(parts, generalized = FALSE)
  md_ginv <- mancl_derouen(parts, generalized = TRUE)
  out <- list(
    formula = rhs,
    geepack = c(list(alpha = scalar(native$geese$alpha), scale = scalar(native$geese$gamma),
                     alpha_recomputed = scalar(alpha_geepack(plogis(drop(X %*% coef(native)))))),
                coef_table(coef(native), vcov(native), df = G - 1)),
    statsmodels_alpha = c(list(alpha = scalar(alpha), fixed_point_iterations = it,
                               max_abs_estimating_equation = scalar(max(abs(ee)))),
                          coef_table(beta, vcov(fit), df = G - 1)),
    mancl_derouen_ginv = c(list(ginv_tolerance = "sqrt(.Machine$double.eps) * largest singular value",
                                smallest_relative_singular_value = vec(md_ginv$smallest_relative_singular_value),
                                second_smallest_relative_singular_value =
                                  vec(md_ginv$second_smallest_relative_singular_value)),
                           coef_table(beta, md_ginv$cov, df = G - 1))
  )
  if (!is.null(md_solve)) out$mancl_derouen_solve <- coef_table(beta, md_solve$cov, df = G - 1)
  out
}

write_result(list(
  n_obs = N, n_clusters = G,
  without_region_dummies = gee_reference(MIX_RHS),
  with_region_dummies = gee_reference(FE_RHS)
), "race_gee.json")

# --------------------------------------------------------------------------------------------------------------
# 7. Beta regression: logit mean, log precision (one constant), on Smithson-Verkuilen squeezed shares
#    y = (share (n - 1) + 0.5) / n. Maximum likelihood by Newton steps on the analytic score, Hessian by numDeriv;
#    clustered covariance with sandwich::vcovCL(type = "HC1", cadjust = TRUE) through estfun/bread methods:
#    G / (G - 1) * (N - 1) / (N - K), K = mean parameters + 1 (precision), as statsmodels' cov_type="cluster".
# --------------------------------------------------------------------------------------------------------------

y_beta <- (races$share * (N - 1) + 0.5) / N
X_beta <- model.matrix(as.formula(paste("~", FE_RHS)), data = races)
k_mean <- ncol(X_beta)

beta_loglik_obs <- function(theta) {
  mu <- plogis(drop(X_beta %*% theta[1:k_mean])); phi <- exp(theta[k_mean + 1])
  lgamma(phi) - lgamma(mu * phi) - lgamma((1 - mu) * phi) + (mu * phi - 1) * log(y_beta) +
    ((1 - mu) * phi - 1) * log(1 - y_beta)
}
beta_score_obs <- function(theta) {
  mu <- plogis(drop(X_beta %*% theta[1:k_mean])); phi <- exp(theta[k_mean + 1])
  ystar <- qlogis(y_beta); mustar <- digamma(mu * phi) - digamma((1 - mu) * phi)
  cbind(X_beta * (phi * (ystar - mustar) * mu * (1 - mu)),
        phi * (mu * (ystar - mustar) + log(1 - y_beta) - digamma((1 - mu) * phi) + digamma(phi)))
}
beta_score <- function(theta) colSums(beta_score_obs(theta))

start <- c(coef(lm.fit(X_beta, qlogis(y_beta))), log(10))
opt <- optim(start, function(t) -sum(beta_loglik_obs(t)), function(t) -beta_score(t), method = "BFGS",
             control = list(maxit = 10000, reltol = 1e-14))
theta <- opt$par
for (it in 1:50) {
  H <- jacobian(beta_score, theta)
  step <- solve(H, beta_score(theta))
  theta <- theta - step
  if (max(abs(step)) < 1e-13) break
}
stopifnot(max(abs(beta_score(theta))) < 1e-8)
H <- jacobian(beta_score, theta)
names(theta) <- c(colnames(X_beta), "precision")

beta_fit <- structure(list(theta = theta, H = H, n = N), class = "refbeta")
estfun.refbeta <- function(x, ...) beta_score_obs(x$theta)
bread.refbeta <- function(x, ...) solve(-x$H) * x$n
nobs.refbeta <- function(object, ...) object$n
V_beta <- vcovCL(beta_fit, cluster = races$region, type = "HC1", cadjust = TRUE)
K_beta <- length(theta)

write_result(list(
  formula = FE_RHS, precision_link = "log", n_obs = N, n_clusters = G,
  n_boundary_squeezed = sum(races$share %in% c(0, 1)),
  small_sample_factor = scalar(G / (G - 1) * (N - 1) / (N - K_beta)),
  loglik = scalar(sum(beta_loglik_obs(theta))),
  max_abs_score = scalar(max(abs(beta_score(theta)))),
  cluster = coef_table(theta, V_beta, df = G - 1)
), "race_beta.json")

# --------------------------------------------------------------------------------------------------------------
# 8. Linear mixed model on the empirical logit log((voted + 0.5) / (registered - voted + 0.5)) with a random
#    intercept by region, REML (lme4::lmer). The REML criterion is also minimised directly over the single
#    relative SD theta = sigma_region / sigma with optimize() as a check on the optimiser's stopping point.
# --------------------------------------------------------------------------------------------------------------

races$elogit <- log((races$voted + 0.5) / (races$registered - races$voted + 0.5))
lmm_formula <- as.formula(paste("elogit ~", MIX_RHS, "+ (1 | region)"))
lmm <- lmer(lmm_formula, data = races, REML = TRUE,
            control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5)))
devfun <- lmer(lmm_formula, data = races, REML = TRUE, devFunOnly = TRUE)
theta_direct <- optimize(devfun, c(0, 10), tol = 1e-12)$minimum
vc <- as.data.frame(VarCorr(lmm))
V_fixed <- as.matrix(vcov(lmm))
sigma2 <- vc$vcov[vc$grp == "Residual"]; tau2 <- vc$vcov[vc$grp == "region"]

# Observed-information covariance of the fixed effects: the fixed-effect block of the inverse Hessian of the
# REML log-likelihood written as a function of (beta, sigma^2, tau^2),
#   l(beta, s2, t2) = -1/2 [sum_g log|V_g| + log|X' V^-1 X| + sum_g r_g' V_g^-1 r_g],  V_g = s2 I + t2 11',
# at lme4's estimates. lme4's vcov is s2 (X' V~^-1 X)^-1 (variance components treated as known); this one
# also carries the beta-variance cross derivatives X' V^-1 (dV/dtheta) V^-1 r, which vanish only in expectation.
X_lmm <- getME(lmm, "X"); y_lmm <- races$elogit
groups_lmm <- split(seq_len(N), races$rid)
reml_loglik <- function(par) {
  b <- par[seq_len(ncol(X_lmm))]; s2 <- par[ncol(X_lmm) + 1]; t2 <- par[ncol(X_lmm) + 2]
  total <- 0; XtVX <- 0
  for (i in groups_lmm) {
    V <- diag(s2, length(i)) + t2
    Xi <- X_lmm[i, , drop = FALSE]; ri <- y_lmm[i] - drop(Xi %*% b)
    total <- total + determinant(V)$modulus + sum(ri * solve(V, ri))
    XtVX <- XtVX + crossprod(Xi, solve(V, Xi))
  }
  -0.5 * (total + determinant(XtVX)$modulus)
}
par_hat <- c(fixef(lmm), sigma2, tau2)
H_reml <- hessian(reml_loglik, par_hat)
V_observed <- solve(-H_reml)[seq_len(ncol(X_lmm)), seq_len(ncol(X_lmm))]
dimnames(V_observed) <- dimnames(V_fixed)
reml_gradient <- grad(reml_loglik, par_hat)

write_result(list(
  formula = paste(MIX_RHS, "+ (1 | region)"), reml = TRUE, n_obs = N, n_clusters = G,
  group_variance = scalar(tau2),
  residual_variance = scalar(sigma2),
  theta = scalar(getME(lmm, "theta")), theta_direct_optimize = scalar(theta_direct),
  reml_criterion = scalar(REMLcrit(lmm)),
  max_abs_reml_gradient = scalar(max(abs(reml_gradient))),
  fixed = coef_table(fixef(lmm), V_fixed),
  fixed_observed_information = coef_table(fixef(lmm), V_observed)
), "race_mixedlm.json")
