use std::future::Future;

/// Docs and other attributes stay.
#[anosys::logger]
#[inline]
#[must_use]
pub fn free(a: i32, (b, c): (i32, i32)) -> i32 {
    a + b + c
}

#[anosys::logger(source = "billing", skip(token), fields(user.id = 7, "plan" = "pro"))]
pub(crate) fn with_args(token: &str, mut n: u32) -> Result<u32, std::num::ParseIntError> {
    n += token.len() as u32;
    let parsed: u32 = "5".parse()?;
    Ok(n + parsed)
}

#[anosys::logger(skip_all)]
async fn asynchronous<'a>(s: &'a str) -> &'a str {
    s
}

#[anosys::logger]
fn returns_future(x: u8) -> impl Future<Output = u8> + Send {
    async move { x }
}

#[anosys::logger]
fn generic<T: Clone, U>(t: T, _u: U) -> T
where
    U: Default,
{
    t.clone()
}

struct S(u8);

impl S {
    #[anosys::logger]
    fn by_ref(&self) -> u8 {
        self.0
    }
    #[anosys::logger]
    fn by_mut(&mut self) {
        self.0 += 1;
    }
    #[anosys::logger]
    fn by_value(self) -> u8 {
        self.0
    }
    #[anosys::logger]
    async fn async_method(&self, add: u8) -> u8 {
        self.0 + add
    }
}

trait T {
    fn required(&self) -> u8;
    fn async_required(&self) -> impl Future<Output = u8> + Send;
}

impl T for S {
    #[anosys::logger]
    fn required(&self) -> u8 {
        self.0
    }
    #[anosys::logger]
    async fn async_required(&self) -> u8 {
        self.0
    }
}

#[anosys::logger]
async fn async_boxed(fail: bool) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    if fail {
        return Err(Box::new(std::io::Error::other("x")));
    }
    let n: u8 = "1".parse()?;
    Ok(n)
}

#[anosys::logger]
fn sync_boxed(fail: bool) -> Result<u8, Box<dyn std::error::Error>> {
    if fail {
        return Err(Box::new(std::io::Error::other("x")));
    }
    Ok("2".parse()?)
}

#[anosys::logger]
fn early_unit(stop: bool) {
    if stop {
        return;
    }
}

#[anosys::logger]
fn borrowed<'a>(s: &'a str, _t: &str) -> &'a str {
    if s.is_empty() {
        return "";
    }
    s
}

#[anosys::logger]
fn main() {
    let _ = async_boxed(false);
    let _ = sync_boxed(true);
    early_unit(true);
    let _ = borrowed("a", "b");
    let _ = free(1, (2, 3));
    let _ = with_args("ab", 1);
    let _ = asynchronous("x");
    let _ = returns_future(1);
    let _ = generic(1u8, 0u8);
    let mut s = S(1);
    s.by_mut();
    let _ = s.by_ref();
    let _ = s.async_method(1);
    let _ = s.required();
    let _ = s.async_required();
    let _ = s.by_value();
}
