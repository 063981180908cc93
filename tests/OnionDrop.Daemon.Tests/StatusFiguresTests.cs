using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Daemon.Status;
using OnionDrop.Files;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// status.json's and the journal's figures (submissions waiting, their bytes, free disk) are taken at start and
/// then once a UTC day, as the catalog dates a submission: figures refreshed hourly would date each arrival to
/// the hour, and give its size, to whoever keeps the journal or collects status.json.
/// </summary>
public sealed class StatusFiguresTests
{
    [Test]
    public async Task A_submission_shows_in_the_figures_and_the_journal_only_on_the_next_day()
    {
        using var temp = new TempDirectory();
        using var key = JournalistKey.Generate();
        var data = temp.Combine("data");
        using var store = SealedBlobStore.Open(data);
        var services = new ServiceCollection().AddSingleton<ISealedBlobStore>(store).BuildServiceProvider();
        var clock = new ManualClock(new DateTimeOffset(DateTime.UtcNow.Date.AddHours(9), TimeSpan.Zero));
        var log = new ListLogger();
        var writer = new StatusFileWriter(Options.Create(new OnionDropOptions { DataDir = data, Tor = TorMode.None }), services, log, clock);

        var atStart = writer.Snapshot("running");
        Assert.That(atStart.Submissions!.Waiting, Is.Zero);
        Assert.That(atStart.Submissions.AsOf, Is.EqualTo(clock.Now));

        await using (var submission = store.BeginSubmission())
        {
            await using (var sealer = new SubmissionSealer(submission.Ciphertext, [key.PublicKey]))
                await sealer.CompleteAsync(submission.Id, "hello", DateTimeOffset.UtcNow);
            await submission.CommitAsync();
        }
        var startedAt = clock.Now;
        foreach (var later in new[] { TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), TimeSpan.FromHours(14.9) })
        {
            clock.Now = startedAt + later;
            var same = writer.Snapshot("running");
            Assert.That(same.Submissions!.Waiting, Is.Zero, $"{later} later, the same day: the start's figures");
            Assert.That(same.Submissions.AsOf, Is.EqualTo(startedAt));
            Assert.That(same.Disk.AsOf, Is.EqualTo(startedAt), "free disk moves with each submission too");
        }

        clock.Now = startedAt.Date.AddDays(1).AddSeconds(3);
        var nextDay = writer.Snapshot("running");
        Assert.That(nextDay.Submissions!.Waiting, Is.EqualTo(1), "the next day's figures count it");
        Assert.That(nextDay.Submissions.AsOf, Is.EqualTo(clock.Now));
        Assert.That(log.Lines.Where(l => l.StartsWith("Submissions waiting")), Is.EqualTo(new[]
        {
            "Submissions waiting: 0 (0 B), oldest since -",
            $"Submissions waiting: 1 ({ByteSize.Format(nextDay.Submissions.WaitingBytes)}), oldest since {store.ListCommitted().Single().ArrivedOn:yyyy-MM-dd}",
        }), "the journal: one line as each day's figures are taken, none in between");
    }

    /// <summary>
    /// blobs/ deleted under the running daemon (a mistaken rm, a lost mount): every upload then failed with "Something
    /// went wrong" while status said healthy, and kept saying so until a restart.
    /// </summary>
    [Test]
    public void A_blobs_folder_gone_under_the_running_daemon_makes_status_unhealthy()
    {
        using var temp = new TempDirectory();
        var data = temp.Combine("data");
        using var store = SealedBlobStore.Open(data);
        var services = new ServiceCollection().AddSingleton<ISealedBlobStore>(store).BuildServiceProvider();
        var writer = new StatusFileWriter(Options.Create(new OnionDropOptions { DataDir = data, Tor = TorMode.None }), services, new ListLogger(), TimeProvider.System);
        Assert.That(writer.Snapshot("running").Problems, Is.Empty);

        Directory.Delete(Path.Combine(data, SealedBlobStore.BlobsDirectoryName), recursive: true);

        var problems = writer.Snapshot("running").Problems;
        Assert.That(problems, Has.Exactly(1).StartsWith("store unreadable: ").And.Contain(Path.Combine(data, "blobs")));
    }

    /// <summary>Sealed files the open kept in orphaned/ wait for the operator's recover: the journal alone was easy to miss.</summary>
    [Test]
    public void Sealed_files_kept_in_orphaned_make_status_ask_for_recover()
    {
        using var temp = new TempDirectory();
        var data = temp.Combine("data");
        SealedBlobStore.Open(data).Dispose();
        File.WriteAllBytes(Path.Combine(data, SealedBlobStore.BlobsDirectoryName, SubmissionId.New() + ".sealed"), new byte[50]);
        using var store = SealedBlobStore.Open(data); // not listed: kept in orphaned/
        var services = new ServiceCollection().AddSingleton<ISealedBlobStore>(store).BuildServiceProvider();
        var writer = new StatusFileWriter(Options.Create(new OnionDropOptions { DataDir = data, Tor = TorMode.None }), services, new ListLogger(), TimeProvider.System);

        Assert.That(writer.Snapshot("running").Problems, Has.Exactly(1).StartsWith("1 sealed file(s) in ").And.Contain("oniondrop recover"));
        File.Delete(Directory.GetFiles(Path.Combine(data, SealedBlobStore.OrphanedDirectoryName)).Single());
        Assert.That(writer.Snapshot("running").Problems, Is.Empty, "deleted by the operator: nothing more to say");
    }

    private sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private sealed class ListLogger : ILogger<StatusFileWriter>
    {
        public List<string> Lines { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add(formatter(state, exception));
    }
}
