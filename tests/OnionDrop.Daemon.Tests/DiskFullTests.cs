using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OnionDrop.Testing;

namespace OnionDrop.Daemon.Tests;

/// <summary>A full disk: the source gets a 507 page, earlier submissions stay intact, and serving resumes once there is room.</summary>
[Category("EndToEnd")]
public sealed class DiskFullTests
{
    [Test]
    public async Task Full_disk_gives_507_keeps_earlier_submissions_and_recovers()
    {
        await using var disk = await SmallTmpfs.MountAsync(24);
        await using var daemon = await TestDaemon.StartAsync(dataDir: Path.Combine(disk.Path, "data"));
        using var client = daemon.LoopbackClient();
        var first = new Multipart().File("before.bin", new byte[1_000_000].Select((_, i) => (byte)i).ToArray()).Field("message", "before");
        using (var r = await client.PostAsync("/", first.ToContent())) Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        // Leave about 1 MiB free, then send 4 MB.
        var filler = Path.Combine(disk.Path, "filler");
        SmallTmpfs.Fill(filler, leave: 1024 * 1024);

        var big = new Multipart().File("during.bin", new byte[4_000_000]).Field("message", "during");
        using (var r = await client.PostAsync("/", big.ToContent()))
        {
            var html = await r.Content.ReadAsStringAsync();
            Assert.That((int)r.StatusCode, Is.EqualTo(507), html);
            Assert.That(html, Does.Contain("no room left").And.Not.Contain("Exception"));
        }
        Assert.That(daemon.BlobFiles().Where(f => !f.EndsWith(".sealed")), Is.Empty, "the failed submission left no partial");
        Assert.That(daemon.Counters.Failed, Is.EqualTo(1));

        File.Delete(filler);
        var after = new Multipart().File("after.bin", new byte[2_000_000]).Field("message", "after");
        using (var r = await client.PostAsync("/", after.ToContent())) Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var opened = daemon.OpenAll();
        Assert.That(opened.Select(o => o.Message), Is.EqualTo(new[] { "before", "after" }));
    }

    [Test]
    public async Task Uploads_refused_by_a_full_disk_log_one_line_not_one_each()
    {
        // journald stamps every line: one per refused upload would be a record of when each source tried.
        await using var disk = await SmallTmpfs.MountAsync(24);
        await using var daemon = await TestDaemon.StartAsync(dataDir: Path.Combine(disk.Path, "data"));
        var lines = new LogLines();
        daemon.App.Services.GetRequiredService<ILoggerFactory>().AddProvider(lines);
        using var client = daemon.LoopbackClient();
        SmallTmpfs.Fill(Path.Combine(disk.Path, "filler"), leave: 1024 * 1024);

        for (var i = 0; i < 3; i++)
        {
            using var r = await client.PostAsync("/", new Multipart().File("during.bin", new byte[4_000_000]).ToContent());
            Assert.That((int)r.StatusCode, Is.EqualTo(507));
        }
        Assert.That(daemon.Counters.Failed, Is.EqualTo(3), "the counter still counts each one");
        Assert.That(lines.All.Count(l => l.Contains("Disk full", StringComparison.OrdinalIgnoreCase)), Is.EqualTo(1), string.Join("\n", lines.All));
    }

    /// <summary>Every line the daemon's loggers write, as text.</summary>
    private sealed class LogLines : ILoggerProvider
    {
        public readonly System.Collections.Concurrent.ConcurrentQueue<string> All = new();
        public ILogger CreateLogger(string categoryName) => new Logger(this);
        public void Dispose() { }

        private sealed class Logger(LogLines lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.All.Enqueue(formatter(state, exception));
        }
    }
}
