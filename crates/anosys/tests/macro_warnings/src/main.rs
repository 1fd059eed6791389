//! Every form `#[anosys::logger]` supports, written as a user would. Without
//! the attributes this crate is clean under `-D warnings` and
//! `clippy::pedantic`; so must it be with them.
//!
//! Bodies that are a single expression stay on one line (that is where
//! `unused_braces` looks); others span several.

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use anosys::logger;

#[derive(Debug, serde::Serialize)]
struct Order {
    cents: u64,
}

/// Not `Serialize`, not `Debug`: captured by its type name.
struct Opaque(u64);

// Free functions.

#[anosys::logger]
fn add(a: i32, b: i32) -> i32 { a + b }

#[anosys::logger]
fn add_multiline(a: i32, b: i32) -> i32 {
    a + b
}

#[anosys::logger]
fn unit_expr(a: &mut i32) { *a += 1; }

#[anosys::logger]
fn unit_call(a: i32) { println!("{a}") }

#[anosys::logger]
fn empty() {}

#[anosys::logger]
fn literal() -> &'static str { "literal" }

#[anosys::logger]
fn returns_result(s: &str) -> Result<u32, std::num::ParseIntError> { s.parse() }

#[anosys::logger]
fn question_mark(s: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = s.parse()?;
    Ok(n + 1)
}

#[anosys::logger]
fn question_mark_option(v: &[u8]) -> Option<u8> {
    let first = v.first()?;
    Some(first + 1)
}

#[anosys::logger]
fn early_return(x: i32) -> i32 {
    if x < 0 {
        return 0;
    }
    x * 2
}

#[anosys::logger]
fn early_unit(stop: bool) {
    if stop {
        return;
    }
    println!("go");
}

#[anosys::logger]
fn boxed_error(fail: bool) -> Result<u8, Box<dyn std::error::Error>> {
    if fail {
        return Err(Box::new(std::io::Error::other("x")));
    }
    Ok("2".parse()?)
}

#[anosys::logger]
fn io_result(path: &str) -> std::io::Result<u64> { Ok(std::fs::metadata(path)?.len()) }

#[anosys::logger]
fn borrowed<'a>(s: &'a str, _unused: &str) -> &'a str { s }

#[anosys::logger]
fn elided(s: &str) -> &str { s.trim() }

#[anosys::logger]
fn generic<T: Clone + std::fmt::Debug>(t: &T) -> T { t.clone() }

#[anosys::logger]
fn generic_where<T, U>(t: T, u: U) -> (T, U)
where
    T: Copy,
    U: Default + Copy,
{
    (t, u)
}

#[anosys::logger]
fn impl_trait_arg(items: impl IntoIterator<Item = u32>) -> u32 { items.into_iter().sum() }

#[anosys::logger]
fn impl_display(d: &impl std::fmt::Display) -> String { d.to_string() }

#[anosys::logger]
fn returns_impl_trait(n: u8) -> impl Iterator<Item = u8> { 0..n }

#[anosys::logger]
fn pattern_args((a, b): (i32, i32), mut c: i32) -> i32 {
    c += a;
    c + b
}

#[anosys::logger]
fn opaque(o: &Opaque) -> Opaque { Opaque(o.0) }

#[anosys::logger]
fn raw_identifier(r#type: u8) -> u8 { r#type }

#[anosys::logger]
fn diverges(msg: &str) -> ! { panic!("{msg}") }

#[anosys::logger]
fn with_local_items() -> u8 {
    const BASE: u8 = 2;
    fn helper(x: u8) -> u8 { x * BASE }
    helper(3)
}

#[anosys::logger]
fn inner_attribute(x: u8) -> u8 {
    #![allow(clippy::identity_op)]
    x + 0
}

#[anosys::logger]
#[must_use]
#[inline]
/// Docs and attributes stay.
pub fn with_attrs(a: u8) -> u8 { a }

#[anosys::logger]
pub(crate) fn restricted(a: u8) -> u8 { a }

#[anosys::logger]
extern "C" fn extern_c(a: u8) -> u8 { a }

/// # Safety
///
/// `p` must be valid for reads.
#[anosys::logger]
unsafe fn unsafe_fn(p: *const u8) -> u8 { unsafe { *p } }

// Arguments of the attribute.

#[anosys::logger(source = "billing")]
fn with_source(o: &Order) -> u64 { o.cents }

#[anosys::logger(skip(card))]
fn with_skip(o: &Order, card: &str) -> u64 { o.cents + card.len() as u64 }

#[anosys::logger(skip(_reserved))]
fn skip_underscored(o: &Order, _reserved: u8) -> u64 { o.cents }

#[anosys::logger(skip_all)]
fn with_skip_all(o: &Order, card: &str) -> u64 { o.cents + card.len() as u64 }

#[anosys::logger(fields(kind = "card"))]
fn with_fields(o: &Order) -> u64 { o.cents }

#[anosys::logger(source = "billing", skip(card), fields(user.id = 7, "plan" = "pro", currency = o.cents, sum = o.cents + 1))]
fn with_everything(o: &Order, card: &str) -> Result<u64, std::io::Error> {
    if card.is_empty() {
        return Err(std::io::Error::other("no card"));
    }
    Ok(o.cents)
}

#[logger]
fn imported_attribute(a: u8) -> u8 { a }

#[logger(source = "imported", skip_all)]
async fn imported_attribute_async(a: u8) -> u8 { std::future::ready(a).await }

// Async functions and functions returning futures.

#[anosys::logger]
async fn async_add(a: i32, b: i32) -> i32 { std::future::ready(a + b).await }

#[anosys::logger]
async fn async_add_multiline(a: i32, b: i32) -> i32 {
    std::future::ready(a + b).await
}

#[anosys::logger]
async fn async_unit() { std::future::ready(()).await }

#[anosys::logger]
async fn async_unit_stmt() { std::future::ready(()).await; }

#[anosys::logger]
async fn async_result(s: &str) -> Result<u32, std::num::ParseIntError> { std::future::ready(s.parse()).await }

#[anosys::logger]
async fn async_question(s: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    if s.is_empty() {
        return Err("empty".into());
    }
    let n: u32 = std::future::ready(s.parse()).await?;
    Ok(n)
}

#[anosys::logger]
async fn async_borrow<'a>(s: &'a str, _unused: &str) -> &'a str { std::future::ready(s).await }

#[anosys::logger]
async fn async_generic<T: Send>(t: T) -> T { std::future::ready(t).await }

#[anosys::logger]
async fn async_impl_trait(d: impl std::fmt::Display + Send) -> impl std::fmt::Display { std::future::ready(d).await }

#[anosys::logger]
#[allow(clippy::unused_async)]
async fn async_empty() {}

#[anosys::logger]
async fn async_with_local_items() -> u8 {
    struct Local(u8);
    const ONE: u8 = 1;
    std::future::ready(Local(ONE)).await.0
}

#[anosys::logger]
fn returns_future(x: u8) -> impl Future<Output = u8> + Send { std::future::ready(x) }

#[anosys::logger]
fn returns_future_result(x: u8) -> impl Future<Output = Result<u8, std::io::Error>> {
    let doubled = x.checked_mul(2).ok_or_else(|| std::io::Error::other("overflow"));
    async move { doubled }
}

// Methods.

struct Counter(u8);

impl Counter {
    #[anosys::logger]
    fn associated(n: u8) -> Self { Self(n) }

    #[anosys::logger]
    fn by_ref(&self) -> u8 { self.0 }

    #[anosys::logger]
    fn by_mut(&mut self) { self.0 += 1; }

    #[anosys::logger]
    fn by_mut_ret(&mut self, n: u8) -> u8 {
        self.0 += n;
        self.0
    }

    #[anosys::logger]
    fn by_value(self) -> u8 { self.0 }

    #[anosys::logger]
    fn typed_self(self: Rc<Self>) -> u8 { self.0 }

    #[anosys::logger(skip(self))]
    fn skip_self(&self, x: u8) -> u8 { self.0 + x }

    #[anosys::logger]
    fn result_method(&self) -> Result<u8, std::io::Error> {
        if self.0 == 0 {
            return Err(std::io::Error::other("zero"));
        }
        Ok(self.0)
    }

    #[anosys::logger]
    fn returns_self_future(&self) -> impl Future<Output = u8> + '_ { std::future::ready(self.0) }

    #[anosys::logger]
    async fn async_by_ref(&self, add: u8) -> u8 { std::future::ready(self.0 + add).await }

    #[anosys::logger]
    async fn async_by_mut(&mut self) { self.0 += std::future::ready(1).await; }

    #[anosys::logger]
    async fn async_by_value(self) -> u8 { std::future::ready(self.0).await }

    #[anosys::logger]
    async fn async_result_method(&self) -> Result<u8, std::io::Error> {
        if self.0 == 0 {
            return Err(std::io::Error::other("zero"));
        }
        std::future::ready(Ok(self.0)).await
    }
}

// Trait impls, and default methods of a trait.

trait Named {
    fn name(&self) -> String;
    fn try_name(&self) -> Result<String, std::fmt::Error>;
    fn async_name(&self) -> impl Future<Output = String> + Send;
    fn consume(self) -> u8;

    #[anosys::logger]
    fn default_method(&self) -> usize { self.name().len() }
}

impl Named for Counter {
    #[anosys::logger]
    fn name(&self) -> String { format!("counter {}", self.0) }

    #[anosys::logger]
    fn try_name(&self) -> Result<String, std::fmt::Error> {
        let mut s = String::new();
        std::fmt::Write::write_str(&mut s, &self.name())?;
        Ok(s)
    }

    #[anosys::logger]
    async fn async_name(&self) -> String { std::future::ready(format!("async counter {}", self.0)).await }

    #[anosys::logger]
    fn consume(self) -> u8 { self.0 }
}

impl Default for Counter {
    #[anosys::logger]
    fn default() -> Self { Self(1) }
}

impl std::fmt::Display for Counter {
    #[anosys::logger(skip(f))]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{}", self.0) }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[anosys::logger]
fn main() {
    let order = Order { cents: 1999 };
    let mut n = add(1, 2) + add_multiline(1, 2);
    unit_expr(&mut n);
    unit_call(n);
    empty();
    println!("{}", literal());
    let _ = returns_result("1");
    let _ = question_mark("1");
    let _ = question_mark_option(&[1]);
    let _ = early_return(-1);
    early_unit(true);
    let _ = boxed_error(false);
    let _ = io_result(".");
    let _ = borrowed("a", "b");
    let _ = elided(" a ");
    let _ = generic(&1u8);
    let _ = generic_where(1u8, 0u8);
    let _ = impl_trait_arg([1, 2]);
    let _ = impl_display(&1);
    let _ = returns_impl_trait(3).count();
    let _ = pattern_args((1, 2), 3);
    let _ = opaque(&Opaque(1));
    let _ = raw_identifier(1);
    if std::env::args().len() > 1_000 {
        diverges("too many arguments");
    }
    let _ = with_local_items();
    let _ = inner_attribute(1);
    let _ = with_attrs(1);
    let _ = restricted(1);
    let _ = extern_c(1);
    // SAFETY: a reference is valid for reads.
    let _ = unsafe { unsafe_fn(&1) };
    let _ = with_source(&order);
    let _ = with_skip(&order, "4242");
    let _ = skip_underscored(&order, 0);
    let _ = with_skip_all(&order, "4242");
    let _ = with_fields(&order);
    let _ = with_everything(&order, "4242");
    let _ = imported_attribute(1);
    let _ = block_on(imported_attribute_async(1));
    let _ = block_on(async_add(1, 2)) + block_on(async_add_multiline(1, 2));
    block_on(async_unit());
    block_on(async_empty());
    block_on(async_unit_stmt());
    let _ = block_on(async_result("1"));
    let _ = block_on(async_question("1"));
    let _ = block_on(async_borrow("x", "y"));
    let _ = block_on(async_generic(1u8));
    let _ = block_on(async_impl_trait(1)).to_string();
    let _ = block_on(async_with_local_items());
    let _ = block_on(returns_future(1));
    let _ = block_on(returns_future_result(1));
    let mut c = Counter::associated(1);
    c.by_mut();
    let _ = c.by_mut_ret(1);
    let _ = c.by_ref();
    let _ = c.skip_self(1);
    let _ = c.result_method();
    let _ = block_on(c.returns_self_future());
    let _ = block_on(c.async_by_ref(1));
    block_on(c.async_by_mut());
    let _ = block_on(c.async_result_method());
    let _ = c.name();
    let _ = c.try_name();
    let _ = c.default_method();
    let _ = block_on(c.async_name());
    let _ = c.to_string();
    let _ = Counter::default().consume();
    let _ = block_on(Counter(2).async_by_value());
    let _ = Rc::new(Counter(3)).typed_self();
    let _ = c.by_value();
}
